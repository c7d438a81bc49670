// Package testenv lets integration tests find the services they need.
package testenv

import (
	"os"
	"testing"
)

// Require returns the value of the environment variable name, which holds
// a service address. When it is unset the test is skipped with a message,
// or fails when STINT_REQUIRE_SERVICES=1 (as in CI), where a skipped
// integration test would hide a missing service.
func Require(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v != "" {
		return v
	}
	if os.Getenv("STINT_REQUIRE_SERVICES") == "1" {
		t.Fatalf("%s is not set and STINT_REQUIRE_SERVICES=1: this integration test must run", name)
	}
	t.Skipf("%s is not set: skipping integration test", name)
	return ""
}
