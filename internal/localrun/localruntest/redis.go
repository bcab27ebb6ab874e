package localruntest

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/llm-sandbox/llm-sandbox/internal/localrun"
)

// Redis is a real redis-server on 127.0.0.1 that speaks TLS only and requires an AUTH token,
// as the department's cache does: a certificate authority and a server certificate for
// 127.0.0.1 (and any other names the test gives) written by the test, a free port, and a
// temporary directory for everything it writes (persistence off). Stop ends it; a cleanup ends
// it too.
type Redis struct {
	// Port is its TLS port on 127.0.0.1.
	Port int
	// Token is the AUTH token it requires.
	Token string
	// CAFile is the CA's certificate file.
	CAFile string
	// CAPEM is the CA's certificate, for a client that trusts it by content.
	CAPEM []byte
	pool  *x509.CertPool
	args  []string
	dir   string
	cmd   *exec.Cmd
	done  chan struct{}
}

// StartRedis starts redis-server (Debian's package; the Makefile's APT_PACKAGES installs it),
// whose certificate names 127.0.0.1 and hosts, or skips when it is not installed.
func StartRedis(t T, hosts ...string) *Redis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skipf("redis-server is not installed: `make test` installs the Debian package redis-server")
	}
	dir := t.TempDir()
	pki := NewPKI(t, "llm-sandbox test cache CA", append([]string{"127.0.0.1"}, hosts...)...)
	caFile, certFile, keyFile := pki.WriteFiles(t, dir)
	r := &Redis{
		CAPEM:  pki.CAPEM,
		Port:   localrun.FreePort(t),
		Token:  localrun.RandomAlphanumeric(t, 32),
		CAFile: caFile,
		pool:   pki.Pool,
		dir:    dir,
	}
	r.args = []string{
		"--bind", "127.0.0.1", "--port", "0", "--tls-port", strconv.Itoa(r.Port),
		"--tls-cert-file", certFile, "--tls-key-file", keyFile, "--tls-ca-cert-file", caFile,
		"--tls-auth-clients", "no", "--requirepass", r.Token,
		"--dir", dir, "--save", "", "--appendonly", "no", "--daemonize", "no",
		"--logfile", filepath.Join(dir, "redis.log"),
	}
	r.start(t, bin)
	t.Cleanup(r.Stop)
	return r
}

func (r *Redis) start(t T, bin string) {
	t.Helper()
	r.cmd = exec.Command(bin, r.args...)
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	r.done = make(chan struct{})
	go func() { _ = r.cmd.Wait(); close(r.done) }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := r.dial()
		if err == nil {
			_, err = c.do("PING")
			c.Close()
			if err == nil {
				return
			}
		}
		select {
		case <-r.done:
			log, _ := os.ReadFile(filepath.Join(r.dir, "redis.log"))
			t.Fatalf("redis-server exited before it answered: %s", log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server does not answer on 127.0.0.1:%d: %v", r.Port, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop ends the server and waits for it to exit.
func (r *Redis) Stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	select {
	case <-r.done:
		return
	default:
	}
	_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
	<-r.done
}

// redisConn is a minimal RESP client: enough to authenticate, ping and read what the gateway
// stored.
type redisConn struct {
	net.Conn
	rd *bufio.Reader
}

// dial connects over TLS, checking the server's certificate against the test's authority,
// and authenticates.
func (r *Redis) dial() (*redisConn, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", "127.0.0.1:"+strconv.Itoa(r.Port),
		&tls.Config{RootCAs: r.pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
	if err != nil {
		return nil, err
	}
	c := &redisConn{Conn: conn, rd: bufio.NewReader(conn)}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.do("AUTH", r.Token); err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// do sends one command and returns its reply: a string, an int64, nil or a []any.
func (c *redisConn) do(args ...string) (any, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(c.Conn, b.String()); err != nil {
		return nil, err
	}
	return c.reply()
}

func (c *redisConn) reply() (any, error) {
	line, err := c.rd.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return nil, errors.New("redis: empty reply")
	}
	switch line[0] {
	case '+':
		return line[1:], nil
	case '-':
		return nil, errors.New("redis: " + line[1:])
	case ':':
		return strconv.ParseInt(line[1:], 10, 64)
	case '$':
		n, _ := strconv.Atoi(line[1:])
		if n < 0 {
			return nil, nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(c.rd, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, _ := strconv.Atoi(line[1:])
		if n < 0 {
			return nil, nil
		}
		out := make([]any, n)
		for i := range out {
			if out[i], err = c.reply(); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("redis: unexpected reply %q", line)
}

// Dump returns every key with a text rendering of its value (strings, sorted-set members,
// hash fields and values, list items): what an attacker holding the cache would read.
func (r *Redis) Dump(t T) map[string]string {
	t.Helper()
	c, err := r.dial()
	if err != nil {
		t.Fatalf("connect to redis-server: %v", err)
	}
	defer c.Close()
	keys, err := c.do("KEYS", "*")
	if err != nil {
		t.Fatalf("redis KEYS: %v", err)
	}
	out := map[string]string{}
	for _, k := range keys.([]any) {
		key := k.(string)
		kind, err := c.do("TYPE", key)
		if err != nil {
			t.Fatalf("redis TYPE %s: %v", key, err)
		}
		var v any
		switch kind {
		case "string":
			v, err = c.do("GET", key)
		case "zset":
			v, err = c.do("ZRANGE", key, "0", "-1", "WITHSCORES")
		case "hash":
			v, err = c.do("HGETALL", key)
		case "list":
			v, err = c.do("LRANGE", key, "0", "-1")
		case "set":
			v, err = c.do("SMEMBERS", key)
		default:
			v = "(" + fmt.Sprint(kind) + ")"
		}
		if err != nil {
			t.Fatalf("redis read %s: %v", key, err)
		}
		out[key] = fmt.Sprint(v)
	}
	return out
}
