package sqltmpl

import (
	"errors"
	"strings"
)

// Redact returns err with every occurrence of the secrets replaced by
// "[redacted]". Database errors can quote the statement that failed
// (MySQL: "near '…IDENTIFIED BY '<password>'…'"), and the error reaches
// logs and audit events. The result does not wrap err, so the original
// text cannot be reached through errors.Unwrap either.
func Redact(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "[redacted]")
		}
	}
	return errors.New(msg)
}
