package preflight

import (
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/llm-sandbox/llm-sandbox/config"
	"github.com/llm-sandbox/llm-sandbox/internal/catalog"
)

// amiParameter is one public SSM parameter the stack's nodes boot from.
type amiParameter struct {
	check     string // the check's name
	what      string // what the parameter publishes, for messages
	parameter string
	users     []string
}

// amiParameters are the parameters the deploy resolves, as the components choose them: the
// GPU Deep Learning AMI for GPU pools, Ubuntu for CPU pools and the gateway (which always
// exists). The parameters are the catalog's, which the components resolve too.
func amiParameters(spec *config.Spec) []amiParameter {
	gpu := amiParameter{check: "ami gpu", what: "the Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 24.04)", parameter: catalog.GPUAMIParameter}
	cpu := amiParameter{check: "ami cpu", what: "Canonical's Ubuntu 24.04 AMI", parameter: catalog.CPUAMIParameter}
	for _, name := range spec.PoolNames() {
		inst, _ := catalog.LookupInstance(spec.Pools[name].InstanceType)
		if inst.HasGPU() {
			gpu.users = append(gpu.users, "pool "+name)
		} else {
			cpu.users = append(cpu.users, "pool "+name)
		}
	}
	cpu.users = append(cpu.users, "gateway")
	if len(gpu.users) == 0 {
		return []amiParameter{cpu}
	}
	return []amiParameter{gpu, cpu}
}

// checkAMIs resolves each AMI parameter the nodes use, as the deploy will (ssm.LookupParameter
// in components/internal/nodegroup), and checks it names an AMI.
func (r *run) checkAMIs() []Result {
	var results []Result
	for _, p := range amiParameters(r.spec) {
		results = append(results, r.checkAMI(p))
	}
	return results
}

func (r *run) checkAMI(p amiParameter) Result {
	users := strings.Join(p.users, ", ")
	ctx, cancel := r.call()
	defer cancel()
	out, err := r.c.SSM.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(p.parameter)})
	switch {
	case apiCode(err) == "ParameterNotFound":
		return Result{Name: p.check, Status: Fail,
			Detail: fmt.Sprintf("%s does not exist in %s: AWS does not publish %s there (used by %s)", p.parameter, r.region, p.what, users),
			Advice: fmt.Sprintf("deploy in a region that publishes it (try `aws ssm get-parameter --name %s --region <region>`)", p.parameter)}
	case err != nil:
		return callFailed(p.check, "ssm:GetParameter", err)
	}
	value := ""
	if out.Parameter != nil && out.Parameter.Value != nil {
		value = *out.Parameter.Value
	}
	if !strings.HasPrefix(value, "ami-") {
		return Result{Name: p.check, Status: Fail,
			Detail: fmt.Sprintf("%s in %s holds %q, not an ami- id (used by %s)", p.parameter, r.region, value, users),
			Advice: "the deploy would fail resolving the AMI; report it to whoever publishes the parameter and deploy in another region meanwhile"}
	}
	return Result{Name: p.check, Status: OK,
		Detail: fmt.Sprintf("%s resolves to %s in %s (used by %s)", p.parameter, value, r.region, users)}
}
