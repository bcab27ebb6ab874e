package modelpool

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"
	_ "time/tzdata" // check IANA zones the same way on machines without /usr/share/zoneinfo

	"github.com/llm-sandbox/llm-sandbox/components/internal/launch"
	"github.com/llm-sandbox/llm-sandbox/node"
)

var (
	hhmm      = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)
	dayName   = `(MON|TUE|WED|THU|FRI|SAT|SUN)`
	daysField = regexp.MustCompile(`^` + dayName + `(-` + dayName + `)?(,` + dayName + `(-` + dayName + `)?)*$`)
)

// tagPool is the tag that names the pool on its instances, volumes and group; with Department
// it scopes the node role's lifecycle permission.
const tagPool = "Pool"

// validate returns every problem with args at once, each naming its field, and otherwise the
// node config the user data will carry.
func validate(name string, args *ModelPoolArgs) (*node.Config, error) {
	c := launch.NewChecker("model pool", name)
	if args == nil {
		c.Add("ModelPoolArgs", "required (got nil)")
		return nil, c.Err()
	}
	add := c.Add

	c.Department(args.Department)
	if n := len(args.Pool); n < 1 || n > 20 || !launch.DNSLabel.MatchString(args.Pool) {
		add("Pool", "must be a lowercase DNS label of 1..20 characters (got %q)", args.Pool)
	}
	c.Region(args.Region)
	c.InstanceType("InstanceType", args.InstanceType, "g5.xlarge")

	c.Sizes(args.MinSize, args.MaxSize, 0)
	if args.WarmPool < 0 {
		add("WarmPool", "must be at least 0 (got %d)", args.WarmPool)
	}
	if args.Spot && args.WarmPool > 0 {
		add("Spot, WarmPool", "cannot be combined: AWS does not allow a warm pool on a group with spot or a mixed instances policy (got Spot true, WarmPool %d)", args.WarmPool)
	}
	if args.Spot {
		validateSpotTypes(args, c)
	}
	if args.Schedule != nil {
		validateSchedule(args.Schedule, add)
	}

	c.Models("Models", args.Models)
	if args.Parallel < 1 {
		add("Parallel", "must be at least 1 (got %d)", args.Parallel)
	}
	if args.ContextLength < 1 {
		add("ContextLength", "must be at least 1 (got %d)", args.ContextLength)
	}

	if strings.TrimSpace(args.OllamaRelease.Version) == "" {
		add("OllamaRelease.Version", "required (got %q)", args.OllamaRelease.Version)
	}
	if u, err := url.Parse(args.OllamaRelease.URL); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "s3") {
		add("OllamaRelease.URL", "must be an https:// or s3://bucket/key URL (got %q)", args.OllamaRelease.URL)
	}
	if err := releaseArtifact(args.OllamaRelease).Validate(); err != nil {
		add("OllamaRelease", "%v", err)
	}
	c.SHA256("AgentSHA256", args.AgentSHA256)
	c.Required(map[string]bool{
		"AgentURL":           args.AgentURL == nil,
		"ArtifactsBucketArn": args.ArtifactsBucketArn == nil,
		"KMSKeyArn":          args.KMSKeyArn == nil,
		"VpcID":              args.VpcID == nil,
		"SubnetIDs":          args.SubnetIDs == nil,
	})
	c.Tags(args.Tags, identity(args))

	if err := c.Err(); err != nil {
		return nil, err
	}
	cfg := nodeConfig(args)
	// The checks above cover every field the node config takes; this is a backstop so that a
	// config the agent would refuse at boot is refused at deploy time instead.
	if err := cfg.Validate(); err != nil {
		add("node config", "%s", err.Error())
		return nil, c.Err()
	}
	return cfg, nil
}

func validateSpotTypes(args *ModelPoolArgs, c *launch.Checker) {
	if len(args.SpotInstanceTypes) == 0 {
		c.Add("SpotInstanceTypes", "required when Spot is true: the instance types the spot group may launch, InstanceType first (got none)")
		return
	}
	if args.SpotInstanceTypes[0] != args.InstanceType {
		c.Add("SpotInstanceTypes[0]", "must be the pool's own InstanceType %q (got %q)", args.InstanceType, args.SpotInstanceTypes[0])
	}
	seen := map[string]bool{}
	for i, t := range args.SpotInstanceTypes {
		field := fmt.Sprintf("SpotInstanceTypes[%d]", i)
		if c.InstanceType(field, t, "g5.xlarge") && seen[t] {
			c.Add(field, "lists %q twice", t)
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
