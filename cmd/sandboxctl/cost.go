package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/pricing"

	"github.com/llm-sandbox/llm-sandbox/internal/cost"
	"github.com/llm-sandbox/llm-sandbox/program"
)

// priceListRegion is where the AWS Price List API is served from; it answers for every region.
const priceListRegion = "us-east-1"

func runCost(e env, projectFlag string, args []string) int {
	return exit(e, "cost", estimateCost(e, projectFlag, args))
}

func estimateCost(e env, projectFlag string, args []string) error {
	fs := flagSet(e, "cost", "cost STACK [--format text|json] [--prices table|live] [--price-region REGION] [--spot-discount F]",
		"Estimates what STACK costs a month from its offline plan: instance-hours per autoscaling\n"+
			"group from its minimum and maximum sizes and office-hours schedule (730 h a month), spot\n"+
			"at --spot-discount, stopped warm-pool instances (volumes only), volumes, NAT gateways,\n"+
			"load balancers, WAF, KMS keys, secrets, flow logs and interface endpoints. Prints a line\n"+
			"per resource and the month at minimum size, at maximum size and always on (the size\n"+
			"each group serves with, no schedule, on-demand) with their ratio, then every price with\n"+
			"its date and source.\n"+
			"--prices table uses the repository's dated table, which holds only prices with a\n"+
			"citable source: every price for us-east-1, and every price but g6e.xlarge's (not offered\n"+
			"there) for ca-central-1. When it lacks a price the stack needs, cost stops and names each\n"+
			"missing price, unless --price-region names a region whose prices to apply instead.\n"+
			"--prices live reads the stack region's prices from the AWS Price List API with the\n"+
			"caller's AWS credentials.\n"+
			"Exit 0 estimated, 1 invalid stack file or a price missing, 2 usage error.")
	format := formatFlag(fs)
	source := fs.String("prices", "table", "where prices come from: `table` or live")
	priceRegion := fs.String("price-region", "", "apply this `region`'s table prices (default: the stack's region)")
	defaults := cost.DefaultAssumptions()
	spot := fs.Float64("spot-discount", defaults.SpotDiscount, "`fraction` spot saves below on-demand")
	project, spec, err := parseOneStack(e, fs, args, format, projectFlag)
	if err != nil {
		return err
	}
	if *source != "table" && *source != "live" {
		return usagef("--prices must be table or live (got %q)", *source)
	}
	if *spot < 0 || *spot >= 1 {
		return usagef("--spot-discount must be at least 0 and below 1 (got %g)", *spot)
	}
	if *source == "live" && *priceRegion != "" {
		return usagef("--price-region applies to --prices table only")
	}
	plan, err := program.PlanStack(spec, project)
	if err != nil {
		return err
	}
	est, err := priceStack(plan, *source, *priceRegion, *spot)
	if err != nil {
		return err
	}
	if *format == "json" {
		return est.WriteJSON(e.stdout)
	}
	return est.WriteText(e.stdout)
}

// priceStack estimates plan's month with prices from source ("table" or "live"), the table's
// prices being priceRegion's if it is set, the plan region's otherwise, and spot at
// spotDiscount.
func priceStack(plan *program.Plan, source, priceRegion string, spotDiscount float64) (*cost.Estimate, error) {
	var prices *cost.Table
	var err error
	if source == "live" {
		prices, err = livePrices(plan)
	} else {
		region := plan.Region
		if priceRegion != "" {
			region = priceRegion
		}
		prices, err = cost.Builtin(region)
		if err != nil {
			return nil, fmt.Errorf("%w; %s", err, costWayOn(plan.Region))
		}
	}
	if err != nil {
		return nil, err
	}
	a := cost.DefaultAssumptions()
	a.SpotDiscount = spotDiscount
	est, err := cost.New(plan, prices, a)
	var missing *cost.MissingPricesError
	if source == "table" && errors.As(err, &missing) {
		return nil, fmt.Errorf("%w; the price table holds only prices with a citable source, and none was found for these (docs/cost.md, Prices); %s",
			err, costWayOn(plan.Region))
	}
	return est, err
}

// costWayOn says how to estimate a stack in region when the table lacks prices it needs.
func costWayOn(region string) string {
	return fmt.Sprintf("run with --prices live for %s's own prices, or --price-region %s to estimate with that region's",
		region, strings.Join(cost.CompleteRegions(), " or "))
}

// livePrices reads the plan region's prices from the AWS Price List API.
func livePrices(plan *program.Plan) (*cost.Table, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(priceListRegion))
	if err != nil {
		return nil, fmt.Errorf("AWS credentials for the Price List API: %w", err)
	}
	return cost.Live(ctx, pricing.NewFromConfig(cfg), plan.Region, cost.InstanceTypes(plan))
}
