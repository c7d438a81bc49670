package policy

import "github.com/google/cel-go/cel"

// timeZoneFunctions returns no overrides yet.
func timeZoneFunctions() []cel.EnvOption { return nil }
