package preflight

import (
	"fmt"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// zones are the region's availability zones as the network component sees them.
type zones struct {
	// available are the available zones of type availability-zone, sorted by name.
	available []string
	// network are the ones the network spans: the first network.azCount of available (the
	// network component takes them in this order; components/network).
	network []string
	// err is set when the zones could not be read; the offering checks then cannot run.
	err error
}

// checkRegion reads the region's availability zones and checks there are at least
// network.azCount. It returns an error only when AWS rejects the credentials.
func (r *run) checkRegion() (Result, zones, error) {
	const name = "region"
	want := r.spec.Network.AZCount
	ctx, cancel := r.call()
	defer cancel()
	// The same filter as the network component's look-up: Local and Wavelength Zones the
	// account opted into are not availability zones and must not count.
	out, err := r.c.EC2.DescribeAvailabilityZones(ctx, &ec2.DescribeAvailabilityZonesInput{
		Filters: []types.Filter{
			{Name: aws.String("zone-type"), Values: []string{"availability-zone"}},
			{Name: aws.String("state"), Values: []string{"available"}},
		},
	})
	if err != nil {
		if isCredentialsRejected(err) {
			return Result{}, zones{}, fmt.Errorf("%w: ec2:DescribeAvailabilityZones in %s: %v", ErrCredentialsRejected, r.region, err)
		}
		res := callFailed(name, "ec2:DescribeAvailabilityZones", err)
		return res, zones{err: err}, nil
	}
	var z zones
	for _, az := range out.AvailabilityZones {
		if az.ZoneName != nil {
			z.available = append(z.available, *az.ZoneName)
		}
	}
	sort.Strings(z.available)
	z.network = z.available[:min(want, len(z.available))]

	if len(z.available) < want {
		advice := fmt.Sprintf("deploy in a region with at least %d availability zones", want)
		if len(z.available) >= 2 {
			advice = fmt.Sprintf("set network.azCount: %d in the stack file, or %s", len(z.available), advice)
		}
		return Result{
			Name:   name,
			Status: Fail,
			Detail: fmt.Sprintf("%s has %d available availability zone(s) (%s); network.azCount wants %d",
				r.region, len(z.available), listOrNone(z.available), want),
			Advice: advice,
		}, z, nil
	}
	return Result{
		Name:   name,
		Status: OK,
		Detail: fmt.Sprintf("%s has %d available availability zones (%s); the network spans the first %d: %s",
			r.region, len(z.available), strings.Join(z.available, ", "), want, strings.Join(z.network, ", ")),
	}, z, nil
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
