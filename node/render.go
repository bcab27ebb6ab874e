package node

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Paths on a node. With --root the agent puts each under the root directory instead of /.
const (
	// OllamaPrefix is the directory the agent owns for the Ollama release: it extracts only
	// bin/ollama and lib/ollama/ there, away from /usr/local, where the agent itself lives.
	OllamaPrefix = "/opt/llm-sandbox/ollama"
	// OllamaBinary is the installed ollama executable (Ollama finds its libraries in
	// ../lib/ollama from it).
	OllamaBinary = OllamaPrefix + "/bin/ollama"
	// OllamaHome is the ollama user's home directory.
	OllamaHome = "/var/lib/ollama"
	// OllamaModelsDir is OLLAMA_MODELS.
	OllamaModelsDir = "/var/lib/ollama/models"
	// OllamaEnvFile is Ollama's environment file (mode 0644, no secrets).
	OllamaEnvFile = "/etc/llm-sandbox/ollama.env"
	// OllamaUnitFile is Ollama's systemd unit.
	OllamaUnitFile = "/etc/systemd/system/ollama.service"
	// OllamaUnit is the unit's name for systemctl.
	OllamaUnit = "ollama.service"
	// NvidiaSMI is the NVIDIA driver's query tool on the GPU AMIs.
	NvidiaSMI = "/usr/bin/nvidia-smi"
	// CacheDir holds downloads while they are checked; each is removed after use.
	CacheDir = "/var/cache/llm-sandbox"
	// OllamaLogFile is Ollama's output when the agent starts it without systemd.
	OllamaLogFile = "/var/log/llm-sandbox/ollama.log"
	// OllamaPidFile is Ollama's process id when the agent starts it without systemd.
	OllamaPidFile = "/run/llm-sandbox/ollama.pid"
)

// EnvVar is one variable of Ollama's environment, with the reason it is set.
type EnvVar struct {
	Name  string
	Value string
	Why   string
}

// OllamaEnv is Ollama's environment for a pool. Ollama ignores a variable it does not know, so a
// misspelt name would silently not apply: each is one that Ollama's own list of settings,
// github.com/ollama/ollama envconfig/config.go, declares (AsMap: Uint("OLLAMA_NUM_PARALLEL"),
// Uint("OLLAMA_CONTEXT_LENGTH", 0) "default: 4k/32k/256k based on VRAM", Uint("OLLAMA_MAX_QUEUE",
// 512), Uint("OLLAMA_MAX_LOADED_MODELS"), String("OLLAMA_KV_CACHE_TYPE"), Bool("OLLAMA_NO_CLOUD"),
// Bool("OLLAMA_NOHISTORY"), LogLevel() reading OLLAMA_DEBUG where 0 means INFO), and docs/faq.md.
// OLLAMA_DEBUG_LOG_REQUESTS (envconfig: "Log inference request bodies ... to a temp directory")
// is deliberately never set: prompts must not reach the disk.
func OllamaEnv(o *OllamaConfig) []EnvVar {
	host := EnvVar{"OLLAMA_HOST", "0.0.0.0:" + strconv.Itoa(o.Port),
		"Listen on every interface. Ollama has no authentication: only the pool's security group,\n" +
			"which admits just the internal load balancer, keeps anyone else off this port."}
	if o.BackendPort != 0 {
		host = EnvVar{"OLLAMA_HOST", "127.0.0.1:" + strconv.Itoa(o.BackendPort),
			"Loopback only: the agent's accounting proxy (sandbox-node serve) owns port " + strconv.Itoa(o.Port) + ",\n" +
				"counts the requests in flight and refuses new ones while the node drains."}
	}
	return []EnvVar{
		host,
		{"OLLAMA_MODELS", OllamaModelsDir, "Models live under the ollama user's home on the root volume."},
		{"OLLAMA_NUM_PARALLEL", strconv.Itoa(o.Parallel), "Requests served at once per model; the KV cache grows with parallel x context."},
		{"OLLAMA_CONTEXT_LENGTH", strconv.Itoa(o.ContextLength), "Set explicitly: unset, Ollama picks it from the VRAM size (an A10G lands on 4096)."},
		{"OLLAMA_KEEP_ALIVE", "-1", "Keep models loaded forever: a node serves only its preloaded models."},
		{"OLLAMA_FLASH_ATTENTION", "1", "Flash attention: faster, less memory, and required by the quantised KV cache."},
		{"OLLAMA_KV_CACHE_TYPE", "q8_0", "q8_0 halves the KV cache's memory (the default is f16); it needs flash attention."},
		{"OLLAMA_MAX_QUEUE", strconv.Itoa(o.MaxQueue), "Requests queued beyond this are refused with 503 instead of waiting without bound."},
		{"OLLAMA_MAX_LOADED_MODELS", strconv.Itoa(len(o.Models)), "Every model of the pool stays loaded at once."},
		{"OLLAMA_NO_CLOUD", "1", "No cloud inference or web search: nothing leaves the department's network."},
		{"OLLAMA_NOHISTORY", "1", "No readline history for the interactive CLI (the server stores none either way)."},
		{"OLLAMA_DEBUG", "0", "INFO logging: the server logs no prompts unless debug logging is on.\n" +
			"Never set OLLAMA_DEBUG_LOG_REQUESTS, which writes request bodies to disk."},
	}
}

// RenderEnv renders Ollama's environment file, in the KEY=value form systemd's EnvironmentFile=
// reads, each variable under a comment that says why it is set.
func RenderEnv(c *Config) ([]byte, error) {
	if c.Ollama == nil {
		return nil, errors.New("render ollama.env: the config has no ollama section")
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Ollama's environment for pool %q of department %q.\n", c.Pool, c.Department)
	fmt.Fprintf(&b, "# Written by sandbox-node from %s on every boot: change the stack, not this file.\n", ConfigPath)
	b.WriteString("# No secrets: everything here comes from the node config, which travels in user data.\n")
	b.WriteString("# Names checked against github.com/ollama/ollama envconfig/config.go and docs/faq.md.\n")
	for _, v := range OllamaEnv(c.Ollama) {
		b.WriteString("\n")
		for _, line := range strings.Split(v.Why, "\n") {
			b.WriteString("# " + line + "\n")
		}
		b.WriteString(v.Name + "=" + v.Value + "\n")
	}
	return b.Bytes(), nil
}

// UnitPaths are the files the Ollama unit refers to. A node uses DefaultUnitPaths; the
// systemd-analyze test renders a copy whose paths exist in a temporary directory.
type UnitPaths struct {
	Ollama    string
	NvidiaSMI string
	EnvFile   string
	Home      string
}

// DefaultUnitPaths are the paths on a node.
func DefaultUnitPaths() UnitPaths {
	return UnitPaths{Ollama: OllamaBinary, NvidiaSMI: NvidiaSMI, EnvFile: OllamaEnvFile, Home: OllamaHome}
}

// RenderUnit renders Ollama's systemd unit. GPU pools run nvidia-smi before every start so
// that Ollama never starts before the NVIDIA device nodes exist: it would silently serve from
// the CPU (ollama#7669). A failed nvidia-smi fails the start, and Restart= tries again.
func RenderUnit(c *Config, p UnitPaths) ([]byte, error) {
	if c.Ollama == nil {
		return nil, errors.New("render ollama.service: the config has no ollama section")
	}
	u := unitFile{
		Title:           "Ollama",
		Description:     fmt.Sprintf("Ollama model server (llm-sandbox department %s, pool %s)", c.Department, c.Pool),
		Documentation:   "https://github.com/ollama/ollama",
		User:            "ollama",
		EnvironmentFile: p.EnvFile,
		ExecStart:       p.Ollama + " serve",
		HardeningWhy: []string{
			"Sandbox (systemd.exec(5)): no capabilities, a read-only system with writable state only",
			"under the ollama user's home, IPv4/IPv6/Unix sockets only, the @system-service system",
			"calls, no writable and executable memory (Ollama's CPU and CUDA runners are compiled",
			"ahead of time; NixOS runs CUDA Ollama so). GPU pools see only the NVIDIA devices",
			"(the device groups NixOS's ollama module allows for CUDA); CPU pools no devices at all.",
			"/proc stays whole: Ollama reads /proc/meminfo to size what it loads.",
		},
		Hardening: append(sandboxing(),
			"ProtectSystem=strict",
			"ReadWritePaths="+p.Home,
			"MemoryDenyWriteExecute=yes"),
	}
	if c.Ollama.GPU {
		u.Hardening = append(u.Hardening, nvidiaDevices()...)
	} else {
		u.Hardening = append(u.Hardening, "PrivateDevices=yes")
	}
	if c.Ollama.GPU {
		u.ExecStartPre = []string{p.NvidiaSMI}
	}
	return u.render(), nil
}

// nvidiaDevices are the directives that let a GPU pool's services see the NVIDIA devices and
// no other (the device groups NixOS's ollama module allows for CUDA): Ollama, and the serve
// unit, whose metrics publisher runs nvidia-smi.
func nvidiaDevices() []string {
	return []string{"DevicePolicy=closed",
		"DeviceAllow=char-nvidiactl rw", "DeviceAllow=char-nvidia-caps rw",
		"DeviceAllow=char-nvidia-frontend rw", "DeviceAllow=char-nvidia-uvm rw"}
}

// sandboxing is the systemd sandbox both services run in (systemd.exec(5)), scored by
// `systemd-analyze security` in the tests; each role adds its file system, device and memory
// settings. The services need no capability, no namespace of their own, no privileged system
// call and no socket beyond IPv4, IPv6 and Unix; they run as their own user, in a user
// namespace of their own, and what they create is theirs alone (UMask=0077).
func sandboxing() []string {
	return []string{
		"NoNewPrivileges=yes",
		"CapabilityBoundingSet=",
		"AmbientCapabilities=",
		"PrivateTmp=yes",
		"PrivateUsers=yes",
		"ProtectHome=yes",
		"ProtectKernelTunables=yes",
		"ProtectKernelModules=yes",
		"ProtectKernelLogs=yes",
		"ProtectControlGroups=yes",
		"ProtectClock=yes",
		"ProtectHostname=yes",
		"ProtectProc=invisible",
		"RestrictNamespaces=yes",
		"RestrictRealtime=yes",
		"RestrictSUIDSGID=yes",
		"RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
		"LockPersonality=yes",
		"RemoveIPC=yes",
		"SystemCallArchitectures=native",
		"SystemCallFilter=@system-service",
		"SystemCallFilter=~@privileged",
		"SystemCallErrorNumber=EPERM",
		"UMask=0077",
	}
}

// unitFile is a service unit as the agent writes them, for either role: a header saying who
// writes it, the service's user (and group of the same name), its environment (a file and
// single variables, each under the reason it is set), its command, Restart=always and the
// hardening the role allows. Rendering is deterministic: the golden files and systemd-analyze
// test the exact bytes a node gets.
type unitFile struct {
	// Title names the program in the header comment.
	Title         string
	Description   string
	Documentation string
	// User runs the service, with the group of the same name.
	User string
	// EnvironmentFile is read by systemd (as root, before dropping to User) when set;
	// EnvironmentFileWhy are the comment lines above it.
	EnvironmentFile    string
	EnvironmentFileWhy []string
	// Environment are Environment= lines, each under its reason.
	Environment  []EnvVar
	ExecStartPre []string
	ExecStart    string
	// HardeningWhy are the comment lines above the Hardening directives.
	HardeningWhy []string
	Hardening    []string
}

func (u unitFile) render() []byte {
	var b bytes.Buffer
	comment := func(lines ...string) {
		for _, l := range lines {
			for _, part := range strings.Split(l, "\n") {
				b.WriteString("# " + part + "\n")
			}
		}
	}
	fmt.Fprintf(&b, "# %s for the llm-sandbox node agent. Written by sandbox-node on every boot:\n", u.Title)
	b.WriteString("# change the stack, not this file.\n")
	b.WriteString("[Unit]\n")
	fmt.Fprintf(&b, "Description=%s\n", u.Description)
	fmt.Fprintf(&b, "Documentation=%s\n", u.Documentation)
	b.WriteString("Wants=network-online.target\n")
	b.WriteString("After=network-online.target\n")
	b.WriteString("\n[Service]\n")
	b.WriteString("Type=exec\n")
	fmt.Fprintf(&b, "User=%s\n", u.User)
	fmt.Fprintf(&b, "Group=%s\n", u.User)
	if u.EnvironmentFile != "" {
		comment(u.EnvironmentFileWhy...)
		fmt.Fprintf(&b, "EnvironmentFile=%s\n", u.EnvironmentFile)
	}
	for _, v := range u.Environment {
		comment(v.Why)
		fmt.Fprintf(&b, "Environment=%s=%s\n", v.Name, v.Value)
	}
	for _, pre := range u.ExecStartPre {
		fmt.Fprintf(&b, "ExecStartPre=%s\n", pre)
	}
	fmt.Fprintf(&b, "ExecStart=%s\n", u.ExecStart)
	b.WriteString("Restart=always\n")
	b.WriteString("RestartSec=3\n")
	comment(u.HardeningWhy...)
	for _, h := range u.Hardening {
		b.WriteString(h + "\n")
	}
	b.WriteString("\n[Install]\n")
	b.WriteString("WantedBy=multi-user.target\n")
	return b.Bytes()
}
