package preflight

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/llm-sandbox/llm-sandbox/config"
	"github.com/llm-sandbox/llm-sandbox/internal/catalog"
)

// use is one way the stack uses an instance type.
type use struct {
	label string // "pool gpu", "spot alternative of pool batch", "gateway"
	// primary is a group's own type: without it in every zone, the group cannot launch there.
	// A spot alternative is not: the spot group launches its other types in a zone that lacks it.
	primary bool
	gpu     bool
}

// typeUses lists the instance types of the stack in a stable order, with their uses.
func typeUses(spec *config.Spec) ([]string, map[string][]use) {
	var order []string
	uses := map[string][]use{}
	add := func(t string, u use) {
		if _, seen := uses[t]; !seen {
			order = append(order, t)
		}
		uses[t] = append(uses[t], u)
	}
	for _, name := range spec.PoolNames() {
		p := spec.Pools[name]
		inst, _ := catalog.LookupInstance(p.InstanceType)
		add(p.InstanceType, use{label: "pool " + name, primary: true, gpu: inst.HasGPU()})
		if p.Spot {
			for _, t := range p.SpotInstanceTypes() {
				if t != p.InstanceType {
					add(t, use{label: "spot alternative of pool " + name, gpu: inst.HasGPU()})
				}
			}
		}
	}
	add(spec.Gateway.InstanceType, use{label: "gateway", primary: true})
	return order, uses
}

// checkOfferings checks that every instance type of the stack is offered in every zone the
// network spans. The ASGs span all of the network's private subnets, so a type missing from
// one of those zones cannot launch there.
func (r *run) checkOfferings(z zones) []Result {
	order, uses := typeUses(r.spec)
	if z.err != nil || len(z.network) == 0 {
		results := make([]Result, 0, len(order))
		for _, t := range order {
			results = append(results, Result{Name: "offering " + t, Status: Fail,
				Detail: "not checked: the region's availability zones are unknown (see the region check)",
				Advice: "fix the region check first"})
		}
		return results
	}
	// One look-up for the stack's types and the rest of the catalog, so a failure can name
	// the catalog types that are offered in every zone.
	query := slices.Clone(order)
	for _, t := range catalog.InstanceTypes() {
		if !slices.Contains(query, t) {
			query = append(query, t)
		}
	}
	offered, err := r.offeredZones(query)
	if err != nil {
		results := make([]Result, 0, len(order))
		for _, t := range order {
			results = append(results, callFailed("offering "+t, "ec2:DescribeInstanceTypeOfferings", err))
		}
		return results
	}

	var results []Result
	for _, t := range order {
		results = append(results, r.offering(t, uses[t], offered, z))
	}
	return results
}

// offeredZones maps each instance type to the zones of the region that offer it.
func (r *run) offeredZones(typesWanted []string) (map[string][]string, error) {
	offered := map[string][]string{}
	p := ec2.NewDescribeInstanceTypeOfferingsPaginator(r.c.EC2, &ec2.DescribeInstanceTypeOfferingsInput{
		LocationType: types.LocationTypeAvailabilityZone,
		Filters:      []types.Filter{{Name: aws.String("instance-type"), Values: typesWanted}},
	})
	for p.HasMorePages() {
		ctx, cancel := r.call()
		page, err := p.NextPage(ctx)
		cancel()
		if err != nil {
			return nil, err
		}
		for _, o := range page.InstanceTypeOfferings {
			if o.Location != nil {
				t := string(o.InstanceType)
				offered[t] = append(offered[t], *o.Location)
			}
		}
	}
	for t := range offered {
		slices.Sort(offered[t])
	}
	return offered, nil
}

func (r *run) offering(t string, us []use, offered map[string][]string, z zones) Result {
	name := "offering " + t
	labels := make([]string, 0, len(us))
	primary, gpu := false, false
	for _, u := range us {
		labels = append(labels, u.label)
		primary = primary || u.primary
		gpu = gpu || u.gpu
	}
	who := fmt.Sprintf("%s (%s)", t, strings.Join(labels, ", "))
	var missing []string
	for _, az := range z.network {
		if !slices.Contains(offered[t], az) {
			missing = append(missing, az)
		}
	}
	if len(missing) == 0 {
		return Result{Name: name, Status: OK,
			Detail: fmt.Sprintf("%s is offered in every zone the network spans (%s)", who, strings.Join(z.network, ", "))}
	}
	detail := fmt.Sprintf("%s is not offered in %s, of the zones the network spans (%s); %s offers it in %s",
		who, strings.Join(missing, ", "), strings.Join(z.network, ", "), r.region, listOrNone(offered[t]))
	if !primary {
		return Result{Name: name, Status: Warn, Detail: detail,
			Advice: fmt.Sprintf("nothing blocks the deploy: in %s the spot group launches only its other instance types "+
				"(the alternatives come from the instance catalog, config's SpotInstanceTypes)", strings.Join(missing, ", "))}
	}
	return Result{Name: name, Status: Fail, Detail: detail, Advice: r.offeringAdvice(t, gpu, offered, z)}
}

// offeringAdvice names the ways out: a catalog type of the same kind offered in every zone,
// fewer zones when the type is offered in the first ones, or another region.
func (r *run) offeringAdvice(t string, gpu bool, offered map[string][]string, z zones) string {
	var ways []string
	var alternatives []string
	byPrice := catalog.InstanceTypes()
	sort.SliceStable(byPrice, func(i, j int) bool {
		a, _ := catalog.LookupInstance(byPrice[i])
		b, _ := catalog.LookupInstance(byPrice[j])
		return a.PricePerHour < b.PricePerHour
	})
	for _, c := range byPrice {
		inst, _ := catalog.LookupInstance(c)
		if c == t || inst.HasGPU() != gpu {
			continue
		}
		all := true
		for _, az := range z.network {
			all = all && slices.Contains(offered[c], az)
		}
		if all {
			alternatives = append(alternatives, c)
		}
	}
	kind := "CPU"
	if gpu {
		kind = "GPU"
	}
	if len(alternatives) > 0 {
		ways = append(ways, fmt.Sprintf("use an instanceType offered in all of %s, such as the catalog's %s types %s, cheapest first (`sandboxctl validate` checks the models still fit)",
			strings.Join(z.network, ", "), kind, strings.Join(alternatives, ", ")))
	}
	// The network takes the first azCount zones: fewer zones help when the type is offered in
	// a leading run of them (the network needs at least 2).
	leading := 0
	for _, az := range z.network {
		if !slices.Contains(offered[t], az) {
			break
		}
		leading++
	}
	if leading >= 2 {
		ways = append(ways, fmt.Sprintf("set network.azCount: %d (%s is offered in the first %d zones)", leading, t, leading))
	}
	ways = append(ways, fmt.Sprintf("deploy in a region that offers %s in %d availability zones", t, r.spec.Network.AZCount))
	return strings.Join(ways, ", or ")
}
