package modelpool

import (
	"slices"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/llm-sandbox/llm-sandbox/components/internal/nodegroup"
	"github.com/llm-sandbox/llm-sandbox/internal/catalog"
	"github.com/llm-sandbox/llm-sandbox/internal/mirror"
	"github.com/llm-sandbox/llm-sandbox/node"
	"github.com/llm-sandbox/llm-sandbox/versions"
)

const (
	// OllamaPort is Ollama's listening port on the nodes and the target group's port.
	OllamaPort = 11434
	// RootVolumeGiB is the root volume's size: the DLAMI's root snapshot is 75 GiB, and the
	// Ollama release (~2 GB unpacked) and the models (2-5 GB each) come on top.
	RootVolumeGiB = 100
)

// MaxQueue is OLLAMA_MAX_QUEUE for a pool: 4 x Parallel x number of models, at least 16.
//
// A node works on Parallel requests per model at once; Ollama's default queue (512) would let
// one node accept hours of waiting work while the ALB, which balances on outstanding requests,
// and target tracking both see a node that is merely "busy". Four rounds per slot keeps a
// queued request's wait to about four generations; past that the node answers 503 at once, so
// LiteLLM can retry another node or tell the client, instead of the request timing out at the
// load balancer. The floor of 16 lets a one-model, parallel-1 pool absorb a short burst.
func MaxQueue(parallel, models int) int {
	q := 4 * parallel * models
	if q < 16 {
		q = 16
	}
	return q
}

// nodeConfig is the node config the user data carries. The group name is left empty on
// purpose: the agent reads it from the aws:autoscaling:groupName instance tag through IMDS
// (instance metadata tags are on), so the user data is rendered before the group exists.
func nodeConfig(args *ModelPoolArgs) *node.Config {
	models := make([]node.Model, 0, len(args.Models))
	for _, tag := range args.Models {
		// No Source: the agent pulls each tag from the Ollama registry.
		models = append(models, node.NewModel(tag))
	}
	return &node.Config{
		Role:       node.RoleOllama,
		Department: args.Department,
		Pool:       args.Pool,
		Region:     args.Region,
		Lifecycle: node.Lifecycle{
			Hook: nodegroup.LaunchHookName, HeartbeatSeconds: HeartbeatSeconds(args.GPU),
			TerminateHook: nodegroup.TerminateHookName, DrainSeconds: nodegroup.DeregistrationDelaySeconds(args.ContextLength),
		},
		// Marshal then renders an empty release hash for the offline plan; nodes refuse it.
		RenderUnpinned: args.RenderUnpinnedOllama,
		Ollama: &node.OllamaConfig{
			Version: args.OllamaRelease.Version,
			Release: releaseArtifact(args.OllamaRelease),
			GPU:     args.GPU,
			Port:    OllamaPort,
			// Ollama listens on loopback only; the agent's accounting proxy owns OllamaPort.
			BackendPort:   node.OllamaBackendPort,
			Parallel:      args.Parallel,
			ContextLength: args.ContextLength,
			MaxQueue:      MaxQueue(args.Parallel, len(args.Models)),
			Models:        models,
		},
	}
}

// releaseArtifact is the file of an Ollama release, as the node config names it.
func releaseArtifact(r versions.Release) node.Artifact {
	return node.Artifact{URL: r.URL, SHA256: r.SHA256, SumsURL: r.SumsURL}
}

// resolveAMI resolves the GPU or CPU image's public SSM parameter to a concrete AMI id.
func (b *builder) resolveAMI() error {
	param := catalog.AMIParameter(b.args.GPU)
	ami, err := nodegroup.ResolveAMI(b.ctx, param, b.comp)
	if err != nil {
		return err
	}
	b.comp.AMIID, b.comp.AMIParameter = ami, param
	return nil
}

// role creates the node role, its policies and the instance profile.
func (b *builder) role() error {
	r, err := nodegroup.NewNodeRole(b.ctx, b.name, nodegroup.NodeRoleArgs{
		Description:        "llm-sandbox Ollama nodes of " + b.args.Department + "/" + b.args.Pool,
		Region:             b.args.Region,
		Scope:              identity(b.args).Scope,
		ArtifactsBucketArn: b.args.ArtifactsBucketArn,
		KMSKeyArn:          b.args.KMSKeyArn,
		// The agent publishes the node's in-flight requests, the pool's scaling metric.
		Metrics: true,
	}, b.child())
	if err != nil {
		return err
	}
	b.comp.Role, b.comp.SSMAttachment, b.comp.RolePolicy, b.comp.InstanceProfile = r.Role, r.SSMAttachment, r.Policy, r.InstanceProfile
	b.nodeRole = r
	return nil
}

// MirroredConfig is cfg with its Ollama release and models fetched from the mirror in bucket
// (internal/mirror's layout) instead of the internet: the release by its SHA-256, each model by
// its pinned manifest, whose blobs are checked against their digests. cfg is not changed.
func MirroredConfig(cfg *node.Config, bucket string, pins map[string]versions.ModelPin) *node.Config {
	out := *cfg
	o := *cfg.Ollama
	o.Release = node.Artifact{URL: mirror.S3URL(bucket, mirror.OllamaReleaseKey(o.Release.SHA256)), SHA256: o.Release.SHA256}
	o.Models = slices.Clone(o.Models)
	for i, m := range o.Models {
		sum := pins[m.Name].Manifest
		o.Models[i].Mirror = &node.ModelMirror{
			Manifest: node.Artifact{URL: mirror.S3URL(bucket, mirror.ModelManifestKey(sum)), SHA256: sum},
			Blobs:    mirror.S3URL(bucket, mirror.ModelBlobPrefix),
		}
	}
	out.Ollama = &o
	return &out
}

func (b *builder) launchTemplate() error {
	cfg, sha, pins := b.comp.NodeConfig, b.args.AgentSHA256, b.args.ModelPins
	bucket := pulumi.String("").ToStringOutput()
	if b.args.MirrorBucket != nil {
		bucket = b.args.MirrorBucket.ToStringOutput()
	}
	// Only a string is rendered in the ApplyT; no resource is created there.
	userData := pulumi.All(b.args.AgentURL.ToStringOutput(), bucket).ApplyT(func(v []any) (string, error) {
		c := cfg
		if mirrorBucket := v[1].(string); mirrorBucket != "" {
			c = MirroredConfig(cfg, mirrorBucket, pins)
		}
		return nodegroup.RenderUserData(c, node.Artifact{URL: v[0].(string), SHA256: sha})
	}).(pulumi.StringOutput)

	var instanceType pulumi.StringPtrInput
	if !b.args.Spot {
		// With spot, the mixed instances policy's overrides name the types.
		instanceType = pulumi.String(b.args.InstanceType)
	}
	lt, err := nodegroup.NewTemplate(b.ctx, b.name, nodegroup.TemplateArgs{
		Description:        "llm-sandbox Ollama nodes of " + b.args.Department + "/" + b.args.Pool,
		AMIID:              b.comp.AMIID,
		InstanceType:       instanceType,
		SecurityGroupID:    b.comp.SecurityGroup.ID(),
		InstanceProfileArn: b.comp.InstanceProfile.Arn,
		KMSKeyArn:          b.args.KMSKeyArn,
		RootVolumeGiB:      RootVolumeGiB,
		Tags:               identity(b.args).InstanceTags(b.args.Tags),
		UserData:           userData,
	}, b.child())
	if err != nil {
		return err
	}
	b.comp.LaunchTemplate = lt
	return nil
}
