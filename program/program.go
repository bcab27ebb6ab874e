// Package program is the one program body of llm-sandbox: stack config → Spec → sandbox →
// stack outputs. `main.go` hands Main to pulumi.Run, `sandboxctl plan` runs it under mocks, and
// the Automation API runs it as an inline program; all three build exactly the same resources.
package program

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/llm-sandbox/llm-sandbox/components/sandbox"
	"github.com/llm-sandbox/llm-sandbox/config"
	"github.com/llm-sandbox/llm-sandbox/internal/agentbuild"
	"github.com/llm-sandbox/llm-sandbox/versions"
)

// Project is the Pulumi project name (Pulumi.yaml).
const Project = "llm-sandbox"

// Main loads the stack's Spec from the Pulumi config and runs the program body. Invalid config
// fails the update with the same messages `sandboxctl validate` prints, the checks across
// departments included: the other stack files are read from the project's stacks/.
func Main(ctx *pulumi.Context) error {
	spec, err := config.Parse(ctx.Stack(), config.StackFile(ctx.Stack()), configValues(ctx))
	if err != nil {
		return err
	}
	projectDir := ctx.RootDirectory() // where Pulumi.yaml is, under `pulumi up`
	if projectDir == "" {
		cwd, err := os.Getwd()
		if err != nil {
			return err
		}
		if projectDir, err = FindProject(cwd, ""); err != nil {
			return err
		}
	}
	if ps := config.CheckSiblings(spec, projectDir); len(ps) > 0 {
		return ps
	}
	return Run(ctx, spec, projectDir)
}

// Run is the program body: it builds the node agent from the project's source in projectDir,
// builds the department's sandbox from spec and exports the stack outputs. It refuses to deploy
// an Ollama release that nodes would refuse (versions.CheckOllama), before anything is built or
// registered; `sandboxctl plan` renders one anyway, with a warning.
func Run(ctx *pulumi.Context, spec *config.Spec, projectDir string) error {
	return run(ctx, spec, projectDir, versions.Ollama)
}

// run is Run with the Ollama release to check passed in.
func run(ctx *pulumi.Context, spec *config.Spec, projectDir string, ollama versions.Release) error {
	if p := versions.CheckOllama(ollama); p != "" {
		return fmt.Errorf("refusing to deploy stack %s: %s", spec.Stack, p)
	}
	_, err := build(ctx, spec, projectDir, &sandbox.SandboxArgs{OllamaRelease: &ollama, UploadMirror: mirrorUploader(ctx, spec.Region)})
	return err
}

// build builds the node agent and the sandbox and exports the stack outputs. args carries
// the Ollama release, whether an unpinned one may be rendered and how the mirror is uploaded;
// build fills in the rest.
func build(ctx *pulumi.Context, spec *config.Spec, projectDir string, args *sandbox.SandboxArgs) (*sandbox.Sandbox, error) {
	agent, err := agentbuild.Build(ctx.Context(), projectDir)
	if err != nil {
		return nil, err
	}
	args.Spec, args.AgentPath, args.AgentSHA256 = spec, agent.Path, agent.SHA256
	sb, err := sandbox.NewSandbox(ctx, spec.Department, args)
	if err != nil {
		return nil, err
	}
	ctx.Export("department", pulumi.String(spec.Department))
	ctx.Export("region", pulumi.String(spec.Region))
	ctx.Export("vpcId", sb.VpcID)
	ctx.Export("keyArn", sb.KeyArn)
	ctx.Export("masterKeySecretArn", sb.MasterKeySecretArn)
	ctx.Export("poolGroupNames", sb.PoolGroupNames)
	ctx.Export("endpointUrl", sb.EndpointURL)
	ctx.Export("loadBalancerDnsName", sb.LoadBalancerDNSName)
	ctx.Export("gatewayGroupName", sb.GatewayGroupName)
	ctx.Export("dashboardUrl", sb.DashboardURL)
	ctx.Export("alarmTopicArn", sb.AlarmTopicArn)
	return sb, nil
}

// configValues collects the stack's config as the engine passed it. The SDK can read a key but
// not list them, so when the engine's full config is in the environment (PULUMI_CONFIG, set for
// `pulumi up`) it is used whole, which lets Parse report unknown keys; otherwise (inline and
// mock runs) the known keys are read one by one.
func configValues(ctx *pulumi.Context) config.Values {
	if raw := os.Getenv(pulumi.EnvConfig); raw != "" {
		var all map[string]string
		if json.Unmarshal([]byte(raw), &all) == nil {
			values := config.Values{}
			for k, v := range all {
				values[k] = v
			}
			return values
		}
	}
	values := config.Values{}
	for _, k := range config.ConfigKeys() {
		if v, ok := ctx.GetConfig(k); ok {
			values[k] = v
		}
	}
	return values
}
