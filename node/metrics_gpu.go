package node

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/llm-sandbox/llm-sandbox/internal/llmmetrics"
)

// gpuQueryArgs is the nvidia-smi query a GPU pool node's publisher runs before every sample:
// one line per GPU, "<utilization.gpu>, <memory.used>", with neither header nor units.
// utilization.gpu is the percent of time over the last sample period (1/6 s to 1 s, by
// product) during which a kernel ran on the GPU; memory.used is the memory allocated by active
// contexts, in MiB. (nvidia-smi(1), "SELECTIVE QUERY OPTIONS": --query-gpu and --format=csv
// with its noheader and nounits options,
// https://manpages.ubuntu.com/manpages/plucky/man1/nvidia-smi.1.html; the fields as
// `nvidia-smi --help-query-gpu` lists them.)
var gpuQueryArgs = []string{"--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits"}

// gpuQueryTimeout bounds one nvidia-smi run: a hung driver must not hold the sample back
// for long (the in-flight figure waits for it).
const gpuQueryTimeout = 10 * time.Second

// parseGPUQuery reads the output of nvidia-smi with gpuQueryArgs into one figure per node:
// the mean utilisation and the summed memory of every GPU listed. A GPU whose line does not
// hold two numbers (nvidia-smi prints "[N/A]" or "[Not Supported]" for a field the GPU
// cannot report) fails the whole reading rather than skew the node's figure.
func parseGPUQuery(out []byte) (*llmmetrics.GPUSample, error) {
	lines := nonEmptyLines(out)
	if len(lines) == 0 {
		return nil, errors.New("nvidia-smi lists no GPU")
	}
	var s llmmetrics.GPUSample
	for i, line := range lines {
		fields := strings.Split(line, ",")
		if len(fields) != 2 {
			return nil, fmt.Errorf("nvidia-smi line %d: want \"<utilization.gpu>, <memory.used>\" (got %q)", i+1, line)
		}
		util, err1 := strconv.ParseFloat(strings.TrimSpace(fields[0]), 64)
		mem, err2 := strconv.ParseFloat(strings.TrimSpace(fields[1]), 64)
		if err1 != nil || err2 != nil || util < 0 || util > 100 || mem < 0 {
			return nil, fmt.Errorf("nvidia-smi line %d: want a utilisation of 0-100 %% and the MiB in use (got %q)", i+1, line)
		}
		s.UtilizationPercent += util
		s.MemoryUsedMiB += mem
	}
	s.GPUs = len(lines)
	s.UtilizationPercent /= float64(s.GPUs)
	return &s, nil
}

// gpuReader returns the publisher's ReadGPU for a GPU pool node: it runs nvidia-smi with run
// and returns nil when that fails, logging each distinct failure once (and the recovery), so
// that a broken driver neither stops the in-flight samples nor floods the journal.
func gpuReader(run Runner, log *Logger) func(context.Context) *llmmetrics.GPUSample {
	var last string
	return func(ctx context.Context) *llmmetrics.GPUSample {
		ctx, cancel := context.WithTimeout(ctx, gpuQueryTimeout)
		defer cancel()
		out, err := run.Run(ctx, "nvidia-smi", gpuQueryArgs...)
		var s *llmmetrics.GPUSample
		if err == nil {
			s, err = parseGPUQuery(out)
		}
		switch {
		case err != nil && errors.Is(ctx.Err(), context.Canceled):
			// Serve is stopping: not a GPU problem.
		case err != nil && err.Error() != last:
			log.Printf("serve: metrics: GPU figures not published: %v", err)
			last = err.Error()
		case err == nil && last != "":
			log.Printf("serve: metrics: GPU figures published again (%d GPU(s))", s.GPUs)
			last = ""
		}
		return s
	}
}
