package vm

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/llm-sandbox/llm-sandbox/internal/localrun"
)

// EnvImage names the directory of the VM image `make vmimage` builds (tools/vmimage): the
// kernel (vmlinuz), its initrd (initrd.img) and the root file system (rootfs.img, raw ext4).
const EnvImage = "LLM_SANDBOX_VM_IMAGE"

// image is the VM image: Debian with cloud-init, booted straight from its kernel.
type image struct{ kernel, initrd, rootfs string }

// requireImage returns the image, or skips the test when none is configured.
func requireImage(t *testing.T) image {
	t.Helper()
	dir := os.Getenv(EnvImage)
	if dir == "" {
		t.Skipf("no VM image: run `make vmtest` (it builds the image with `make vmimage` and sets %s)", EnvImage)
	}
	img := image{kernel: filepath.Join(dir, "vmlinuz"), initrd: filepath.Join(dir, "initrd.img"), rootfs: filepath.Join(dir, "rootfs.img")}
	for _, f := range []string{img.kernel, img.initrd, img.rootfs} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("%s=%s: %v (run `make vmimage`)", EnvImage, dir, err)
		}
	}
	for _, tool := range []string{"qemu-system-x86_64", "mkfs.vfat", "mcopy", "socat"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: `make vm-apt` installs it", tool)
		}
	}
	return img
}

// The VM's user-mode network is link-local, as an instance's metadata address is: QEMU only
// forwards guest connections to addresses inside the VM's own network, and 169.254.169.254 is
// inside 169.254.0.0/16, so the VM reaches the IMDS stand-in at the address a node uses on
// EC2. The network is restricted: the guest reaches nothing but what is forwarded.
const (
	vmNet        = "169.254.0.0/16"
	vmHost       = "169.254.0.2"
	vmDHCPStart  = "169.254.0.15"
	imdsAddress  = "169.254.169.254"
	frontAddress = "169.254.0.100"
)

// forward is a guest address QEMU relays to a port on the host's loopback.
type forward struct {
	guest string // address:port in the VM's network
	port  int    // on 127.0.0.1
}

// seed is the NoCloud data source: the user data exactly as rendered, the instance's
// metadata, and vendor data for what the test stands in for (the CA and the endpoint names).
type seed struct{ userData, metaData, vendorData string }

// machine is a running VM.
type machine struct {
	Console string
	Started time.Time
	cmd     *exec.Cmd
	exited  chan struct{}
}

// boot starts a VM from img with the seed in dir, forwarding the guest addresses in fwd and
// the host's 127.0.0.1:hostPort to the guest's guestPort; a cleanup stops it. The accelerator
// is EnvAccel's.
func boot(t *testing.T, img image, dir string, s seed, fwd []forward, hostPort, guestPort int) *machine {
	t.Helper()
	seedDir := filepath.Join(dir, "seed")
	if err := os.MkdirAll(seedDir, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"user-data": s.userData, "meta-data": s.metaData, "vendor-data": s.vendorData}
	args := []string{"-i", filepath.Join(dir, "seed.img")}
	for name, content := range files {
		path := filepath.Join(seedDir, name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, path)
	}
	localrun.RunCommand(t, time.Minute, "mkfs.vfat", "-n", "cidata", "-C", filepath.Join(dir, "seed.img"), "2048")
	localrun.RunCommand(t, time.Minute, "mcopy", append(args, "::")...)

	netdev := []string{"user", "id=n0", "restrict=on", "net=" + vmNet, "host=" + vmHost, "dhcpstart=" + vmDHCPStart,
		fmt.Sprintf("hostfwd=tcp:127.0.0.1:%d-:%d", hostPort, guestPort)}
	for _, f := range fwd {
		netdev = append(netdev, fmt.Sprintf("guestfwd=tcp:%s-cmd:socat - TCP:127.0.0.1:%d", f.guest, f.port))
	}
	m := &machine{Console: filepath.Join(dir, "console.log"), exited: make(chan struct{})}
	m.cmd = exec.Command("qemu-system-x86_64",
		"-accel", accelerator(t), "-cpu", "max", "-smp", "2", "-m", "3072",
		"-nodefaults", "-display", "none", "-no-reboot",
		"-serial", "file:"+m.Console,
		"-kernel", img.kernel, "-initrd", img.initrd,
		"-append", "root=/dev/vda rw console=ttyS0 panic=-1",
		"-drive", "file="+img.rootfs+",format=raw,if=virtio,snapshot=on",
		"-drive", "file="+filepath.Join(dir, "seed.img")+",format=raw,if=virtio,readonly=on",
		"-netdev", strings.Join(netdev, ","),
		"-device", "virtio-net-pci,netdev=n0",
	)
	qemuLog, err := os.Create(filepath.Join(dir, "qemu.log"))
	if err != nil {
		t.Fatal(err)
	}
	m.cmd.Stdout, m.cmd.Stderr = qemuLog, qemuLog
	// Its own process group: the cleanup stops QEMU and the relays it forked.
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	m.Started = time.Now()
	if err := m.cmd.Start(); err != nil {
		t.Fatalf("start qemu: %v", err)
	}
	go func() {
		_ = m.cmd.Wait()
		qemuLog.Close()
		close(m.exited)
	}()
	t.Cleanup(func() {
		m.stop()
		if t.Failed() {
			out, _ := os.ReadFile(filepath.Join(dir, "qemu.log"))
			t.Logf("qemu:\n%s\nconsole (last 150 lines):\n%s", out, localrun.Tail([]byte(m.console()), 150))
		}
	})
	return m
}

// EnvAccel names QEMU's accelerator: "tcg" (the default: QEMU emulates the CPU, which works on
// any host) or "kvm". KVM is opt-in because a /dev/kvm that opens does not prove guests run:
// on some nested-virtualization hosts QEMU starts under KVM and the guest never prints a line.
const EnvAccel = "LLM_SANDBOX_VM_ACCEL"

// accelerator is the accelerator EnvAccel names.
func accelerator(t *testing.T) string {
	t.Helper()
	switch a := os.Getenv(EnvAccel); a {
	case "", "tcg":
		return "tcg"
	case "kvm":
		return a
	default:
		t.Fatalf("%s=%s: want tcg or kvm", EnvAccel, a)
		return ""
	}
}

// stop kills QEMU and every relay it started, and waits for it to exit.
func (m *machine) stop() {
	_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
	<-m.exited
}

// console is what the VM printed on its serial console so far.
func (m *machine) console() string {
	data, _ := os.ReadFile(m.Console)
	return string(data)
}

// waitFor polls done every two seconds until it holds, the VM exits, or within passes.
func (m *machine) waitFor(t *testing.T, what string, within time.Duration, done func() bool) time.Duration {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if done() {
			return time.Since(m.Started)
		}
		select {
		case <-m.exited:
			t.Fatalf("the VM exited before %s", what)
		case <-time.After(2 * time.Second):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s of the VM's start", what, within)
		}
	}
}

// surroundings are what a VM's node finds around it that AWS would provide, beside the
// forwards: names that resolve to addresses in the VM's network (the VPC endpoints' private
// DNS names, the cache's and the internal load balancer's names on AWS), CAs it trusts (as an
// instance trusts AWS's public CAs) and environment variables for a unit.
type surroundings struct {
	forwards []forward
	names    []hostsLine
	// cas are PEM certificates.
	cas []string
	// env maps a systemd unit to NAME=value settings, given to it by a drop-in.
	env map[string][]string
}

// hostsLine is a line of /etc/hosts: an address and the names that resolve to it.
type hostsLine struct {
	address string
	names   []string
}

// vendorData is the NoCloud vendor data that puts s in place: what the test stands in for
// beside the user data, which it must not change. cloud-init applies vendor data under the
// user data; the keys do not overlap (the user data has no bootcmd). The CAs go straight into
// the bundle curl, Go and Python's ssl read: cloud-init's ca_certs module would run
// update-ca-certificates, which takes a minute under TCG.
func vendorData(s surroundings) string {
	var b strings.Builder
	b.WriteString("#cloud-config\nbootcmd:\n")
	for _, ca := range s.cas {
		b.WriteString("  - |\n    cat >> /etc/ssl/certs/ca-certificates.crt <<'PEM'\n")
		for _, line := range strings.Split(strings.TrimRight(ca, "\n"), "\n") {
			b.WriteString("    " + line + "\n")
		}
		b.WriteString("    PEM\n")
	}
	for _, h := range s.names {
		b.WriteString("  - echo '" + h.address + " " + strings.Join(h.names, " ") + "' >> /etc/hosts\n")
	}
	for _, unit := range slices.Sorted(maps.Keys(s.env)) {
		dir := "/etc/systemd/system/" + unit + ".d"
		b.WriteString("  - mkdir -p " + dir + "\n  - |\n    cat > " + dir + "/90-vmtest.conf <<'UNIT'\n    [Service]\n")
		for _, v := range s.env[unit] {
			b.WriteString("    Environment=" + v + "\n")
		}
		b.WriteString("    UNIT\n")
	}
	return b.String()
}

// metaData names the instance, as EC2's metadata does.
func metaData(instance string) string {
	return "instance-id: " + instance + "\nlocal-hostname: " + strings.ReplaceAll(instance, "_", "-") + "\n"
}
