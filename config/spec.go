// Package config turns a department's stack file into one typed, validated Spec: it parses the
// stack file's keys, applies defaults in one place, checks every rule at once and looks up the
// model and instance catalogs. Components never read Pulumi config; they receive what the Spec
// holds.
package config

import (
	"hash/fnv"
	"net/netip"
	"sort"
)

// Namespace is the project's config namespace: the stack file's keys are "llm-sandbox:<key>".
const Namespace = "llm-sandbox"

// NATStrategy says how private subnets reach the internet.
type NATStrategy string

// The NAT strategies a stack file may name.
const (
	// NATSingle is one NAT gateway shared by all AZs (the default).
	NATSingle NATStrategy = "single"
	// NATPerAZ is one NAT gateway per AZ, so losing an AZ does not cut the others off.
	NATPerAZ NATStrategy = "perAz"
	// NATNone is no internet egress at all: artifacts and models come from the department's
	// bucket, AWS APIs through interface endpoints.
	NATNone NATStrategy = "none"
)

// AccessMode says who can reach the gateway.
type AccessMode string

// The access modes a stack file may name.
const (
	// AccessInternal is an internal load balancer reachable only from inside the VPC (default).
	AccessInternal AccessMode = "internal"
	// AccessPublic is an internet-facing HTTPS load balancer limited to allowed CIDRs.
	AccessPublic AccessMode = "public"
)

// Spec is one department's validated sandbox: what the program builds, with every default
// applied. Build it with Parse or Load; never fill one by hand outside tests.
type Spec struct {
	// Stack is the Pulumi stack name (the file is stacks/Pulumi.<Stack>.yaml).
	Stack string
	// Source is the stack file the Spec came from, as named in messages.
	Source string
	// Region is the AWS region (aws:region).
	Region string
	// Department is the department's DNS label; it names resources and tags them.
	Department string
	// Network is the VPC layout.
	Network Network
	// Access says who may reach the endpoint.
	Access Access
	// Pools are the model pools, keyed by pool name.
	Pools map[string]Pool
	// Gateway is the LiteLLM tier.
	Gateway Gateway
	// Artifacts is what the department's bucket holds for its nodes.
	Artifacts Artifacts
	// Teams are the department's teams, keyed by team name: who may call which models at
	// which limits. Keys of a team are issued with `sandboxctl keys`. Empty when the stack
	// declares none.
	Teams map[string]Team
	// Tags are the department's own tags, added to every resource.
	Tags map[string]string
	// Alerts is who hears about the department's alarms.
	Alerts Alerts
	// Warnings are what the stack file may say but likely should not, located by file and key
	// like Problems: a gateway that cannot carry the pools' maximum output, a burstable gateway
	// type. They never make the Spec invalid; `sandboxctl validate`, `plan` and `check` print
	// them on standard error. Nil when there are none.
	Warnings Problems
}

// Artifacts is what the department's artifacts bucket holds besides the node agent.
type Artifacts struct {
	// Mirror puts into the bucket everything nodes would otherwise download from the internet
	// at boot (the pinned Ollama release, the LiteLLM wheelhouse, every model of the pools),
	// and points the nodes at it. Always true when Network.NAT is NATNone, which has no other
	// way to reach them.
	Mirror bool
}

// Alerts is who the department's alarms notify.
type Alerts struct {
	// Emails are the addresses subscribed to the alarm topic, in file order, no duplicates
	// (compared without case). Empty (the default): the alarms still fire and the dashboard
	// shows them, but nobody is mailed.
	Emails []string
}

// PoolNames returns the pool names in sorted order, so that anything built per pool is built in
// the same order every run.
func (s *Spec) PoolNames() []string {
	names := make([]string, 0, len(s.Pools))
	for n := range s.Pools {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Network is the department VPC.
type Network struct {
	// CIDR is the VPC's IPv4 range, /16 to /22, in a private (RFC 1918) range.
	CIDR netip.Prefix
	// AZCount is how many availability zones the subnets span: 2 or 3.
	AZCount int
	// NAT is how private subnets reach the internet.
	NAT NATStrategy
}

// Access is who may reach the gateway endpoint.
type Access struct {
	// Mode is internal or public.
	Mode AccessMode
	// CertificateARN is the ACM certificate of the HTTPS listener. Required when public, unless
	// HostedZoneID is set: then, without it, the program requests a certificate for Hostname.
	CertificateARN string
	// AllowedCIDRs are the client ranges admitted to the listener.
	AllowedCIDRs []netip.Prefix
	// AllowAnywhere admits 0.0.0.0/0 in AllowedCIDRs; an explicit, named choice.
	AllowAnywhere bool
	// Hostname is the DNS name clients use, one the certificate covers (a CNAME to the load
	// balancer, made by whoever runs the DNS zone, or by the program when HostedZoneID is set).
	// Optional: without it the endpoint is the load balancer's own DNS name.
	Hostname string
	// HostedZoneID is the Route 53 hosted zone that holds Hostname. Optional; when set, the
	// program creates Hostname's alias record to the load balancer and, when CertificateARN is
	// empty, an ACM certificate for Hostname validated by DNS in that zone.
	HostedZoneID string
	// PlainHTTP makes the front listener plain HTTP on port 80: API keys and prompts cross
	// the VPC in clear. Only with Mode internal and neither CertificateARN nor HostedZoneID;
	// an internal stack without a certificate must set it, so plain HTTP is always a choice
	// made in the stack file. `sandboxctl check` warns about it on every run.
	PlainHTTP bool
}

// HTTPS reports whether the front listener is HTTPS: a certificate is given or requested.
func (a Access) HTTPS() bool {
	return a.CertificateARN != "" || a.HostedZoneID != ""
}

// ManagedCertificate reports whether the program requests the listener's certificate itself
// (a hosted zone and no certificate ARN).
func (a Access) ManagedCertificate() bool {
	return a.HostedZoneID != "" && a.CertificateARN == ""
}

// Pool is one autoscaling group of model nodes serving the same models.
type Pool struct {
	// Name is the pool's key in the stack file.
	Name string
	// InstanceType is an EC2 type from the instance catalog.
	InstanceType string
	// MinSize and MaxSize bound the autoscaling group.
	MinSize, MaxSize int
	// Models are Ollama tags from the model catalog, all loaded on every node.
	Models []string
	// Parallel is OLLAMA_NUM_PARALLEL: concurrent requests per loaded model.
	Parallel int
	// ContextLength is OLLAMA_CONTEXT_LENGTH, in tokens.
	ContextLength int
	// Spot runs the pool on spot capacity.
	Spot bool
	// WarmPool is the number of stopped, pre-initialised instances kept ready.
	WarmPool int
	// Schedule, when set, scales the pool to zero outside office hours.
	Schedule *Schedule
}

// Schedule is a pool's office hours.
type Schedule struct {
	// Timezone is an IANA time zone name, e.g. America/Vancouver.
	Timezone string
	// Days is a cron day-of-week field of three-letter names: "MON-FRI", "MON,WED,FRI".
	Days string
	// Start and Stop are 24-hour "HH:MM" times in Timezone; Start is before Stop.
	Start, Stop string
}

// Gateway is the LiteLLM tier.
type Gateway struct {
	// InstanceType is a CPU type from the instance catalog.
	InstanceType string
	// MinSize and MaxSize bound the gateway's autoscaling group.
	MinSize, MaxSize int
	// DeletionProtection protects the gateway's load balancers from deletion (default true; a
	// CI or development stack that is destroyed often turns it off).
	DeletionProtection bool
}

// Defaults, applied in one place (see parse.go) and documented in docs/config.md and Pulumi.yaml.
const (
	DefaultAZCount          = 2
	DefaultNAT              = NATSingle
	DefaultAccessMode       = AccessInternal
	DefaultPoolInstanceType = "g5.xlarge"
	DefaultPoolMinSize      = 1
	DefaultPoolMaxSize      = 2
	DefaultParallel         = 4
	DefaultContextLength    = 8192
	// DefaultGatewayInstanceType is non-burstable: LiteLLM spends CPU on every streamed chunk
	// (docs/performance.md), and a burstable type sustains only its CPU-credit baseline (30 % of
	// each vCPU for t3.large) before it is billed for surplus credits or slowed down. c7i costs
	// about the same per hour. docs/gateway.md ("Sizing") sizes the gateway from the pools.
	DefaultGatewayInstanceType = "c7i.large"
	DefaultGatewayMinSize      = 2
	DefaultGatewayMaxSize      = 4
	// DefaultDeletionProtection keeps load balancers from being deleted by accident.
	DefaultDeletionProtection = true
)

// ListenerPortBase and ListenerPortRange bound the internal load balancer's per-pool listener
// ports.
const (
	ListenerPortBase  = 20000
	ListenerPortRange = 10000
)

// ListenerPort is the internal load balancer's port for this pool: derived from the pool's name
// alone, so adding or removing another pool never moves it (the gateway's model routes point at
// it). Validation rejects two pools of a stack whose names give the same port.
func (p Pool) ListenerPort() int {
	h := fnv.New32a()
	h.Write([]byte(p.Name))
	return ListenerPortBase + int(h.Sum32()%ListenerPortRange)
}
