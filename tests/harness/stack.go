package harness

// GatewayStack is a department's serving path on loopback, as a deployed stack exposes it: a
// pool node (the real Ollama serving the tiny model as ModelName) behind a gateway node (the
// pinned LiteLLM), the gateway's master key held in the emulator's Secrets Manager. URL and
// MasterKeySecretArn are what the stack outputs endpointUrl and masterKeySecretArn name.
type GatewayStack struct {
	*Deployment
	Pool, Gateway *Member
	// MasterKey is the gateway's master key; MasterKeySecretArn the secret that holds it.
	MasterKey, MasterKeySecretArn string
}

// URL is the gateway's base URL, without /v1 (the stack output endpointUrl).
func (s *GatewayStack) URL() string { return s.Gateway.URL() }

// StartGatewayStack brings up the whole serving path on a new deployment, as TestGateway does
// step by step: the pool node with pool's options, a fresh master key
// stored in Secrets Manager, then the gateway node with gw's options routing to the pool
// (gw.MasterKeySecretArn and gw.OllamaURL are filled in). h must come from RequireLiteLLM.
// Installing LiteLLM takes a minute or two; callers that need the path in several tests share
// one GatewayStack rather than starting one per test. Cleanups registered on t stop everything.
func StartGatewayStack(t T, h Helpers, pool OllamaOptions, gw GatewayOptions) *GatewayStack {
	t.Helper()
	d := NewDeployment(t, h)
	s := &GatewayStack{Deployment: d}
	s.Pool = d.StartOllama(t, "chemistry-cpu", pool)
	s.MasterKey = "sk-" + RandomAlphanumeric(t, 48)
	s.MasterKeySecretArn = d.Moto.CreateSecret(t, "llm-sandbox/chemistry/litellm-master-key", s.MasterKey)
	gw.MasterKeySecretArn = s.MasterKeySecretArn
	gw.OllamaURL = s.Pool.URL()
	s.Gateway = d.StartGateway(t, "chemistry-gateway", gw)
	return s
}
