package modelpool

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/llm-sandbox/llm-sandbox/components/internal/argcheck"
	"github.com/llm-sandbox/llm-sandbox/internal/catalog"
	"github.com/llm-sandbox/llm-sandbox/internal/rules"
	"github.com/llm-sandbox/llm-sandbox/node"
)

// tagPool is the tag that names the pool on its instances, volumes and group; with Department
// it scopes the node role's lifecycle permission.
const tagPool = catalog.TagPool

// validate returns every problem with args at once, each naming its field, and otherwise the
// node config the user data will carry.
func validate(name string, args *ModelPoolArgs) (*node.Config, error) {
	c := argcheck.NewChecker("model pool", name)
	if args == nil {
		c.Add("ModelPoolArgs", "required (got nil)")
		return nil, c.Err()
	}
	add := c.Add

	c.Department(args.Department)
	c.Rule("Pool", rules.ModelPoolName(args.Pool))
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
		validateSchedule(args.Schedule, c)
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
	if args.OllamaRelease.SHA256 == "" && !args.RenderUnpinnedOllama {
		add("OllamaRelease.SHA256", "required: nodes install only an Ollama release whose SHA-256 is recorded in versions/versions.go; "+
			"run `sandboxctl pin ollama %s` on a machine with internet access (got an empty hash)", args.OllamaRelease.Version)
	} else if args.OllamaRelease.SHA256 != "" {
		if err := releaseArtifact(args.OllamaRelease).Validate(); err != nil {
			add("OllamaRelease", "%v", err)
		}
	}
	if args.MirrorBucket != nil {
		for _, m := range args.Models {
			if pin, ok := args.ModelPins[m]; !ok || !rules.IsSHA256Hex(pin.Manifest) {
				add("ModelPins", "must pin model %q with its manifest's SHA-256 when MirrorBucket is set: nodes load models only from the bucket (got %+v)", m, pin)
			}
		}
		if args.OllamaRelease.SHA256 == "" {
			add("MirrorBucket", "needs a pinned OllamaRelease: the mirrored release is named by its SHA-256")
		}
	}
	c.SHA256("AgentSHA256", args.AgentSHA256)
	c.Required(map[string]bool{
		"AgentURL":           args.AgentURL == nil,
		"ArtifactsBucketArn": args.ArtifactsBucketArn == nil,
		"KMSKeyArn":          args.KMSKeyArn == nil,
		"VpcID":              args.VpcID == nil,
		"SubnetIDs":          args.SubnetIDs == nil,
	})
	id := identity(args)
	c.Tags(args.Tags, id.Kind, id.Name, id.Scope)

	if err := c.Err(); err != nil {
		return nil, err
	}
	cfg := nodeConfig(args)
	// The checks above cover every field the node config takes; this is a backstop so that a
	// config the agent would refuse at boot is refused at deploy time instead.
	if _, err := cfg.Marshal(); err != nil {
		add("node config", "%s", err.Error())
		return nil, c.Err()
	}
	return cfg, nil
}

func validateSpotTypes(args *ModelPoolArgs, c *argcheck.Checker) {
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

func validateSchedule(s *Schedule, c *argcheck.Checker) {
	c.Rule("Schedule.Timezone", rules.TimeZone(s.Timezone))
	c.Rule("Schedule.Days", rules.Days(s.Days))
	startOK := c.Rule("Schedule.Start", rules.Clock(s.Start))
	stopOK := c.Rule("Schedule.Stop", rules.Clock(s.Stop))
	if startOK && stopOK && s.Start >= s.Stop {
		c.Add("Schedule.Stop", "must be after Start on the same day (got Start %s, Stop %s)", s.Start, s.Stop)
	}
}
