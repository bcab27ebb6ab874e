package modelpool

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"
	_ "time/tzdata" // check IANA zones the same way on machines without /usr/share/zoneinfo

	"github.com/llm-sandbox/llm-sandbox/node"
)

var (
	dnsLabel     = regexp.MustCompile(`^[a-z]([a-z0-9-]*[a-z0-9])?$`)
	regionRE     = regexp.MustCompile(`^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]$`)
	instanceType = regexp.MustCompile(`^[a-z][a-z0-9-]*\.[a-z0-9]+$`)
	sha256Hex    = regexp.MustCompile(`^[0-9a-f]{64}$`)
	hhmm         = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)
	dayName      = `(MON|TUE|WED|THU|FRI|SAT|SUN)`
	daysField    = regexp.MustCompile(`^` + dayName + `(-` + dayName + `)?(,` + dayName + `(-` + dayName + `)?)*$`)
)

// Tag keys the pool sets itself on its instances and volumes.
const (
	tagName       = "Name"
	tagDepartment = "Department"
	tagPool       = "Pool"
)

// fieldError is one problem with one field of ModelPoolArgs.
type fieldError struct {
	component string // the component's logical name
	field     string // e.g. "MinSize", "Schedule.Start", "Models[1]"
	problem   string // what is wrong, with the value got
}

func (e *fieldError) Error() string {
	return fmt.Sprintf("model pool %q: %s: %s", e.component, e.field, e.problem)
}

// validate returns every problem with args at once, each naming its field, and otherwise the
// node config the user data will carry.
func validate(name string, args *ModelPoolArgs) (*node.Config, error) {
	if args == nil {
		return nil, &fieldError{name, "ModelPoolArgs", "required (got nil)"}
	}
	var errs []error
	add := func(field, format string, a ...any) {
		errs = append(errs, &fieldError{name, field, fmt.Sprintf(format, a...)})
	}

	if n := len(args.Department); n < 2 || n > 32 || !dnsLabel.MatchString(args.Department) {
		add("Department", "must be a lowercase DNS label of 2..32 characters (got %q)", args.Department)
	}
	if n := len(args.Pool); n < 1 || n > 20 || !dnsLabel.MatchString(args.Pool) {
		add("Pool", "must be a lowercase DNS label of 1..20 characters (got %q)", args.Pool)
	}
	if !regionRE.MatchString(args.Region) {
		add("Region", "must be an AWS region name such as ca-central-1 (got %q)", args.Region)
	}
	if !instanceType.MatchString(args.InstanceType) {
		add("InstanceType", "must be an EC2 instance type such as g5.xlarge (got %q)", args.InstanceType)
	}

	if args.MinSize < 0 {
		add("MinSize", "must be at least 0 (got %d)", args.MinSize)
	}
	if args.MaxSize < 1 {
		add("MaxSize", "must be at least 1 (got %d)", args.MaxSize)
	} else if args.MinSize > args.MaxSize {
		add("MaxSize", "must be at least MinSize (got %d, MinSize %d)", args.MaxSize, args.MinSize)
	}
	if args.WarmPool < 0 {
		add("WarmPool", "must be at least 0 (got %d)", args.WarmPool)
	}
	if args.Spot && args.WarmPool > 0 {
		add("Spot, WarmPool", "cannot be combined: AWS does not allow a warm pool on a group with spot or a mixed instances policy (got Spot true, WarmPool %d)", args.WarmPool)
	}
	if args.Spot {
		validateSpotTypes(args, add)
	}
	if args.Schedule != nil {
		validateSchedule(args.Schedule, add)
	}

	if len(args.Models) == 0 {
		add("Models", "must list at least one Ollama tag (got none)")
	}
	seen := map[string]bool{}
	for i, m := range args.Models {
		field := fmt.Sprintf("Models[%d]", i)
		switch {
		case m == "" || strings.ContainsAny(m, " /\\\t\n"):
			add(field, "must be an Ollama tag such as llama3.1:8b (got %q)", m)
		case seen[m]:
			add(field, "lists %q twice", m)
		}
		seen[m] = true
	}
	if args.Parallel < 1 {
		add("Parallel", "must be at least 1 (got %d)", args.Parallel)
	}
	if args.ContextLength < 1 {
		add("ContextLength", "must be at least 1 (got %d)", args.ContextLength)
	}

	if strings.TrimSpace(args.OllamaVersion) == "" {
		add("OllamaVersion", "required (got %q)", args.OllamaVersion)
	}
	if u, err := url.Parse(args.OllamaRelease.URL); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "s3") {
		add("OllamaRelease.URL", "must be an https:// or s3://bucket/key URL (got %q)", args.OllamaRelease.URL)
	}
	if err := args.OllamaRelease.Validate(); err != nil {
		add("OllamaRelease", "%v", err)
	}
	if !sha256Hex.MatchString(args.AgentSHA256) {
		add("AgentSHA256", "must be 64 lowercase hex digits (got %q)", args.AgentSHA256)
	}

	for _, in := range []struct {
		field string
		isNil bool
	}{
		{"AgentURL", args.AgentURL == nil},
		{"ArtifactsBucketArn", args.ArtifactsBucketArn == nil},
		{"KMSKeyArn", args.KMSKeyArn == nil},
		{"VpcID", args.VpcID == nil},
		{"SubnetIDs", args.SubnetIDs == nil},
	} {
		if in.isNil {
			add(in.field, "required (got nil)")
		}
	}

	for k, v := range args.Tags {
		switch {
		case k == tagName:
			add(fmt.Sprintf("Tags[%q]", k), "is set by the pool (%s-%s); leave it out", args.Department, args.Pool)
		case k == tagDepartment && v != args.Department:
			add(fmt.Sprintf("Tags[%q]", k), "must equal Department (got %q, Department %q)", v, args.Department)
		case k == tagPool && v != args.Pool:
			add(fmt.Sprintf("Tags[%q]", k), "must equal Pool (got %q, Pool %q)", v, args.Pool)
		case strings.HasPrefix(strings.ToLower(k), "aws:"):
			add(fmt.Sprintf("Tags[%q]", k), "the aws: prefix is reserved by AWS")
		}
	}

	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	cfg := nodeConfig(args)
	// The checks above cover every field the node config takes; this is a backstop so that a
	// config the agent would refuse at boot is refused at deploy time instead.
	if err := cfg.Validate(); err != nil {
		return nil, &fieldError{name, "node config", err.Error()}
	}
	return cfg, nil
}

func validateSpotTypes(args *ModelPoolArgs, add func(field, format string, a ...any)) {
	if len(args.SpotInstanceTypes) == 0 {
		add("SpotInstanceTypes", "required when Spot is true: the instance types the spot group may launch, InstanceType first (got none)")
		return
	}
	if args.SpotInstanceTypes[0] != args.InstanceType {
		add("SpotInstanceTypes[0]", "must be the pool's own InstanceType %q (got %q)", args.InstanceType, args.SpotInstanceTypes[0])
	}
	seen := map[string]bool{}
	for i, t := range args.SpotInstanceTypes {
		field := fmt.Sprintf("SpotInstanceTypes[%d]", i)
		switch {
		case !instanceType.MatchString(t):
			add(field, "must be an EC2 instance type such as g5.xlarge (got %q)", t)
		case seen[t]:
			add(field, "lists %q twice", t)
		}
		seen[t] = true
	}
}

func validateSchedule(s *Schedule, add func(field, format string, a ...any)) {
	if _, err := time.LoadLocation(s.Timezone); err != nil || s.Timezone == "" || s.Timezone == "Local" {
		add("Schedule.Timezone", "must be an IANA time zone name such as America/Vancouver (got %q)", s.Timezone)
	}
	if !daysField.MatchString(s.Days) {
		add("Schedule.Days", "must be day names MON..SUN as a range or list, e.g. MON-FRI or MON,WED,FRI (got %q)", s.Days)
	}
	startOK, stopOK := hhmm.MatchString(s.Start), hhmm.MatchString(s.Stop)
	if !startOK {
		add("Schedule.Start", "must be a 24-hour time HH:MM, e.g. 08:00 (got %q)", s.Start)
	}
	if !stopOK {
		add("Schedule.Stop", "must be a 24-hour time HH:MM, e.g. 20:00 (got %q)", s.Stop)
	}
	if startOK && stopOK && s.Start >= s.Stop {
		add("Schedule.Stop", "must be after Start on the same day (got Start %s, Stop %s)", s.Start, s.Stop)
	}
}
