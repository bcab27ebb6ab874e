package versions

// ModelPins are the models a mirrored stack may serve, by Ollama tag. Empty until a model is
// pinned: on a machine with internet access run
//
//	sandboxctl pin model llama3.1:8b
//
// which fetches the model's manifest from the Ollama registry and records it here, then review
// and commit the change.
var ModelPins = map[string]ModelPin{}
