package localruntest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/llm-sandbox/llm-sandbox/internal/localrun"
)

// envIsolated marks the run of a test that Isolated started inside its network namespace.
const envIsolated = "LLM_SANDBOX_ISOLATED_TEST"

// Isolated runs the calling test again in a child process of the test binary inside a new
// network namespace in which only loopback exists (and is up): every host but 127.0.0.1 is
// unreachable and no name resolves, as on a node of an air-gapped department whose only way
// out is the VPC's endpoints. In the parent it relays the child's output to t's log, fails t
// when the child failed, skips t when the child skipped, and returns false: the caller returns
// at once. In the child it returns true: the test goes on there.
//
// As root the namespace is one of the network alone (CLONE_NEWNET, man 7
// network_namespaces); otherwise it is nested in a user namespace that maps the caller's ids to
// root in it (CLONE_NEWUSER, man 7 user_namespaces), which gives the child the right to bring
// its loopback up. When the kernel refuses both, t is skipped with the reason. t must be a
// top-level test: the child runs it by name.
func Isolated(t *testing.T) bool {
	t.Helper()
	if strings.Contains(t.Name(), "/") {
		t.Fatalf("Isolated runs a top-level test again by name, not subtest %s", t.Name())
	}
	if os.Getenv(envIsolated) == t.Name() {
		loopbackOnly(t)
		return true
	}
	args := []string{"-test.run=^" + regexp.QuoteMeta(t.Name()) + "$", "-test.v=true", "-test.count=1"}
	if deadline, ok := t.Deadline(); ok {
		// The child stops itself (and its cleanups stop what it started) before the parent's
		// timeout would kill the parent and, through Pdeathsig, the child with no cleanup.
		args = append(args, "-test.timeout="+time.Until(deadline).Round(time.Second).String())
	}
	var last error
	for _, attr := range namespaceAttrs() {
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), envIsolated+"="+t.Name())
		cmd.SysProcAttr = attr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatalf("%v", err)
		}
		cmd.Stderr = cmd.Stdout
		if err := cmd.Start(); err != nil {
			last = err
			continue
		}
		passed, skipped := relay(t, out)
		err = cmd.Wait()
		switch {
		case err != nil:
			t.Fatalf("the run in a network namespace of its own failed: %v", err)
		case skipped:
			t.Skip("the run in a network namespace of its own skipped")
		case !passed:
			t.Fatalf("the run in a network namespace of its own exited 0 but did not report %s passed", t.Name())
		}
		return false
	}
	t.Skipf("cannot make a network namespace for the test (as root: CLONE_NEWNET; otherwise CLONE_NEWUSER with it): %v", last)
	return false
}

// namespaceAttrs are the ways to start the child, in order of preference.
func namespaceAttrs() []*syscall.SysProcAttr {
	netOnly := &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	withUser := &syscall.SysProcAttr{
		Cloneflags:                 syscall.CLONE_NEWUSER | syscall.CLONE_NEWNET,
		UidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
		GidMappingsEnableSetgroups: false,
		Pdeathsig:                  syscall.SIGKILL,
	}
	if os.Geteuid() == 0 {
		return []*syscall.SysProcAttr{netOnly, withUser}
	}
	return []*syscall.SysProcAttr{withUser}
}

// relay logs the child's output line by line as it comes (the log of a long test shows its
// progress) and reports whether the child said the test passed or was skipped.
func relay(t *testing.T, r io.Reader) (passed, skipped bool) {
	pass := "--- PASS: " + t.Name() + " "
	skip := "--- SKIP: " + t.Name() + " "
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		passed = passed || strings.HasPrefix(line, pass)
		skipped = skipped || strings.HasPrefix(line, skip)
		t.Log("netns: " + line)
	}
	return passed, skipped
}

// loopbackOnly brings the namespace's loopback up and fails t unless it is the only
// interface.
func loopbackOnly(t *testing.T) {
	t.Helper()
	if err := linkUp("lo"); err != nil {
		t.Fatalf("bring loopback up in the test's network namespace: %v", err)
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Fatalf("%v", err)
	}
	for _, i := range ifaces {
		if i.Flags&net.FlagLoopback == 0 {
			t.Fatalf("the test's network namespace has interface %s besides loopback", i.Name)
		}
	}
	// No route leads off the machine: a connection to any other address fails at once.
	// 192.0.2.1 is in TEST-NET-1 (RFC 5737), never a real host.
	if c, err := net.DialTimeout("tcp", "192.0.2.1:80", 5*time.Second); err == nil {
		c.Close()
		t.Fatalf("the test's network namespace reached 192.0.2.1:80")
	} else if !errors.Is(err, syscall.ENETUNREACH) {
		t.Fatalf("a connection to 192.0.2.1:80 from the test's network namespace failed with %v, want %v", err, syscall.ENETUNREACH)
	}
}

// ReachOutSigns are what a program logs when it tries to reach a host other than loopback
// inside an Isolated test, where no route leads off the machine: Go's "connect: network is
// unreachable" and Python's "[Errno 101] Network is unreachable" (ENETUNREACH), glibc's
// getaddrinfo error "Temporary failure in name resolution" (EAI_AGAIN, what Python reports
// when the name server cannot be reached), and Go's resolver errors "no such host" and "server
// misbehaving". "connection refused" is not one: nodes poll their own servers on loopback
// before they listen.
var ReachOutSigns = []string{"network is unreachable", "Network is unreachable", "Temporary failure in name resolution", "no such host", "server misbehaving"}

// AssertNoReachOut fails t when the agent's output, its console or a service log of n shows a
// sign of an attempt to reach another host (ReachOutSigns): an attempt a program survived,
// such as a look-up with a local fallback, still breaks an air-gapped node's promise.
func AssertNoReachOut(t T, n *localrun.Node) {
	t.Helper()
	var files []string
	for _, f := range []string{n.Console, n.LogPath("ollama"), n.LogPath("litellm")} {
		if _, err := os.Stat(f); err == nil {
			files = append(files, f)
		}
	}
	for _, hit := range FindInFiles(files, ReachOutSigns, 64<<20).Hits {
		t.Errorf("%s shows an attempt to reach a host off the machine (%q)", hit.Path, hit.Needle)
	}
	for _, sign := range ReachOutSigns {
		if bytes.Contains(n.Stderr.Bytes(), []byte(sign)) || bytes.Contains(n.Stdout.Bytes(), []byte(sign)) {
			t.Errorf("the agent's output shows an attempt to reach a host off the machine (%q)", sign)
		}
	}
}

// ifreqFlags is struct ifreq with the ifr_flags member of its union (man 7 netdevice): 16
// bytes of name, then the union, 24 bytes on amd64.
type ifreqFlags struct {
	name  [syscall.IFNAMSIZ]byte
	flags uint16
	_     [22]byte
}

// linkUp sets IFF_UP on interface name with the SIOCGIFFLAGS and SIOCSIFFLAGS ioctls (man 7
// netdevice), what `ip link set NAME up` does.
func linkUp(name string) error {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer syscall.Close(fd)
	var req ifreqFlags
	copy(req.name[:], name)
	ioctl := func(op uintptr) error {
		if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), op, uintptr(unsafe.Pointer(&req))); errno != 0 {
			return errno
		}
		return nil
	}
	if err := ioctl(syscall.SIOCGIFFLAGS); err != nil {
		return fmt.Errorf("SIOCGIFFLAGS %s: %w", name, err)
	}
	req.flags |= syscall.IFF_UP
	if err := ioctl(syscall.SIOCSIFFLAGS); err != nil {
		return fmt.Errorf("SIOCSIFFLAGS %s: %w", name, err)
	}
	return nil
}
