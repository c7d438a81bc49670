package policy

import (
	"errors"
	"fmt"
	"strings"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/ext"
	"github.com/google/cel-go/interpreter"
)

// Names of the variables a condition sees.
const (
	varIdentity = "identity"
	varHuman    = "human"
	varRequest  = "request"
	varNow      = "now"
)

// newEnv declares the variables and libraries conditions may use. Principals
// and the request are maps of dyn, so a condition type-checks against the
// names it uses and a missing attribute is a runtime "no such key" error
// (which never allows) rather than a compile error.
func newEnv() (*cel.Env, error) {
	attrs := cel.MapType(cel.StringType, cel.DynType)
	opts := []cel.EnvOption{
		cel.Variable(varIdentity, attrs),
		cel.Variable(varHuman, attrs),
		cel.Variable(varRequest, attrs),
		cel.Variable(varNow, cel.TimestampType),
		ext.Strings(),
		ext.Sets(),
		cel.OptionalTypes(),
		cel.ParserExpressionSizeLimit(MaxConditionSize),
	}
	opts = append(opts, timeZoneFunctions()...)
	return cel.NewEnv(opts...)
}

// compileCondition parses, type-checks and plans one condition.
func compileCondition(env *cel.Env, src string) (cel.Program, error) {
	if strings.TrimSpace(src) == "" {
		return nil, errors.New("blank condition: leave it out to mean true")
	}
	ast, iss := env.Compile(src)
	if iss.Err() != nil {
		return nil, iss.Err()
	}
	if t := ast.OutputType(); !t.IsExactType(types.BoolType) {
		return nil, fmt.Errorf("result is %s, want bool (compare dyn values explicitly, e.g. identity.admin == true)", t)
	}
	prg, err := env.Program(ast,
		cel.CostLimit(CostLimit),
		cel.EvalOptions(cel.OptOptimize),
	)
	if err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	return prg, nil
}

// activation resolves the four variables without building a map per
// evaluation.
type activation struct {
	identity, human, request map[string]any
	now                      types.Timestamp
}

func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case varIdentity:
		return a.identity, true
	case varHuman:
		return a.human, true
	case varRequest:
		return a.request, true
	case varNow:
		return a.now, true
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }

var _ interpreter.Activation = (*activation)(nil)
