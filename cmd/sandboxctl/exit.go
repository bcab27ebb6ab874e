package main

import (
	"errors"
	"flag"
	"fmt"

	"github.com/llm-sandbox/llm-sandbox/config"
)

// Exit codes CI can rely on. exitCode below is the one place an error becomes one.
const (
	exitOK        = 0
	exitInvalid   = 1
	exitUsage     = 2
	exitAttention = 3
)

// usageError is a mistake in how the command was called: an argument or flag value, a stack
// with no file, no project, or no endpoint, key or credentials to work with.
type usageError struct{ msg string }

func (u *usageError) Error() string { return u.msg }

// usagef makes a usageError.
func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// flagError is what parsing fs's flags failed with: flag.ErrHelp when help was asked for.
type flagError struct {
	fs  *flag.FlagSet
	err error
}

func (f *flagError) Error() string { return f.err.Error() }
func (f *flagError) Unwrap() error { return f.err }

// errReported ends a command whose output already says what failed: invalid stacks, a failed
// check, an unmet verdict, a failed operation.
var errReported = errors.New("the command's output says what failed")

// errAttention ends a status whose report needs a person: an alarm in ALARM, or a group with
// no healthy node while it should serve. The report says which; nothing more is printed.
var errAttention = errors.New("the service needs attention (the report says why)")

// exitCode maps how a command ended to its exit code:
//
//	0  nil, or help asked for
//	2  a usage error or a flag error
//	3  errAttention: status found an alarm in ALARM or a group with no healthy node
//	1  anything else: invalid stacks, a failed check or operation
func exitCode(err error) int {
	var u *usageError
	var f *flagError
	switch {
	case err == nil || errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &u) || errors.As(err, &f):
		return exitUsage
	case errors.Is(err, errAttention):
		return exitAttention
	}
	return exitInvalid
}

// exit prints how command cmd ended and returns its exit code. Help goes to stdout; a flag error
// goes to stderr with the command's usage; the problems of a stack file go to stderr one a line,
// as validate prints them; any other error goes to stderr as "sandboxctl <cmd>: <error>";
// errReported and errAttention print nothing more.
func exit(e env, cmd string, err error) int {
	var f *flagError
	var ps config.Problems
	switch {
	case err == nil || errors.Is(err, errReported) || errors.Is(err, errAttention):
	case errors.Is(err, flag.ErrHelp) && errors.As(err, &f):
		f.fs.SetOutput(e.stdout)
		f.fs.Usage()
	case errors.As(err, &f):
		fmt.Fprintf(e.stderr, "%s: %v\n", f.fs.Name(), f.err)
		f.fs.SetOutput(e.stderr)
		f.fs.Usage()
	case errors.As(err, &ps):
		for _, p := range ps {
			fmt.Fprintln(e.stderr, p)
		}
	case cmd == "":
		fmt.Fprintf(e.stderr, "sandboxctl: %v\n", err)
	default:
		fmt.Fprintf(e.stderr, "sandboxctl %s: %v\n", cmd, err)
	}
	return exitCode(err)
}
