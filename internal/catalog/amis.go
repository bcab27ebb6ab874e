package catalog

// Public SSM parameters the nodes' AMIs are resolved from at deploy time. The deploy resolves
// each to a concrete AMI id (an instance refresh cannot roll back to a launch template that
// names a parameter), and preflight checks the region publishes them.
const (
	// GPUAMIParameter is the Deep Learning Base OSS Nvidia Driver GPU AMI on Ubuntu 24.04: the
	// NVIDIA driver (>= 550, which Ollama needs), CUDA and the container toolkit preinstalled,
	// so nothing builds driver modules at boot (AWS Deep Learning AMIs developer guide, "Find
	// the ID of a DLAMI", https://docs.aws.amazon.com/dlami/latest/devguide/find-dlami-id.html).
	GPUAMIParameter = "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-24.04/latest/ami-id"
	// CPUAMIParameter is Canonical's Ubuntu 24.04 LTS server AMI with a gp3 root (Canonical,
	// "Find Ubuntu images on AWS", SSM parameters under /aws/service/canonical,
	// https://documentation.ubuntu.com/aws/aws-how-to/instances/find-ubuntu-images/).
	CPUAMIParameter = "/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id"
)

// AMIParameter is the parameter a node group boots from: the GPU image for GPU instance types,
// Ubuntu otherwise.
func AMIParameter(gpu bool) string {
	if gpu {
		return GPUAMIParameter
	}
	return CPUAMIParameter
}
