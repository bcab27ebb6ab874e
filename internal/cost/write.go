package cost

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// WriteJSON writes the estimate as indented JSON.
func (e *Estimate) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(e)
}

// WriteText writes the estimate as a Markdown table per resource, the totals, the schedules and
// assumptions, and the prices with their dates and sources, for people and CI job summaries.
func (e *Estimate) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "## Monthly cost of stack %s (%s)\n\n", e.Stack, e.Region)
	if e.PriceRegion != e.Region {
		fmt.Fprintf(&b, "**Prices of %s applied to a stack in %s**: they are not %s's own; run with `--prices live` for those.\n\n", e.PriceRegion, e.Region, e.Region)
	}
	b.WriteString("| Resource | What | Min | Max | Always on |\n| --- | --- | ---: | ---: | ---: |\n")
	for _, l := range e.Lines {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", l.Resource, l.Item, usd(l.Min), usd(l.Max), usd(l.AlwaysOn))
	}
	fmt.Fprintf(&b, "| **Total** | | **%s** | **%s** | **%s** |\n\n", usd(e.Min), usd(e.Max), usd(e.AlwaysOn))
	fmt.Fprintf(&b, "- At minimum size with its schedules and spot, the stack costs %s a month: %.0f%% of always on (%s), saving %s.\n",
		usd(e.Min), e.Ratio*100, usd(e.AlwaysOn), usd(e.AlwaysOn-e.Min))
	fmt.Fprintf(&b, "- %s of that is fixed (unscheduled on-demand groups such as the gateway, network, load balancers, keys, logs): no pool schedule can go below %.0f%% of always on.\n",
		usd(e.Fixed), e.FloorRatio*100)
	fmt.Fprintf(&b, "- At maximum size all month: %s.\n", usd(e.Max))
	b.WriteString("- Min and Max keep each group's schedule and spot; Always on keeps each group at the size it serves with, no schedule, on-demand.\n\n")
	if len(e.Schedules) > 0 {
		b.WriteString("Schedules:\n\n")
		for _, s := range e.Schedules {
			fmt.Fprintf(&b, "- %s (%s): %s; %.0f instance-hours a week at minimum size, %.0f at maximum\n",
				s.Group, s.Timezone, strings.Join(s.Recurrences, ", "), s.MinHoursPerWeek, s.MaxHoursPerWeek)
		}
		b.WriteString("\n")
	}
	a := e.Assumptions
	fmt.Fprintf(&b, "Assumptions: a month is %g h (%.3f weeks; a week of scheduled hours is the same in every week, daylight-saving changes aside); "+
		"spot %.0f%% below on-demand; %g GB through each NAT gateway; %g GB of flow logs; %g LCU per load balancer; %g million WAF requests. "+
		"Not counted: data transfer out, custom CloudWatch metrics and API calls",
		a.HoursPerMonth, a.HoursPerMonth/hoursPerWeek, a.SpotDiscount*100, a.NATGBPerMonth, a.FlowLogGBPerMonth, a.LCUsPerLoadBalancer, a.WAFMillionRequests)
	for _, n := range e.NotCounted {
		fmt.Fprintf(&b, "; %d %s (%s)", n.Count, n.What, n.Why)
	}
	b.WriteString(".\n\n")
	fmt.Fprintf(&b, "Prices (%s, USD):\n\n| Price | USD | Per | Date | Source |\n| --- | ---: | --- | --- | --- |\n", e.PriceRegion)
	for _, p := range e.Prices {
		fmt.Fprintf(&b, "| %s | %g | %s | %s | %s |\n", p.Key, p.USD, p.Unit, p.Date, p.Source)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func usd(v float64) string { return fmt.Sprintf("$%.2f", v) }
