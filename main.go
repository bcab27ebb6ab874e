// Command llm-sandbox is the Pulumi program: `pulumi up -s <department>` loads the stack's Spec
// from stacks/Pulumi.<department>.yaml and builds the department's sandbox.
package main

import (
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/llm-sandbox/llm-sandbox/program"
)

func main() {
	pulumi.Run(program.Main)
}
