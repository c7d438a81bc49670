package config

import "os"

type DB struct {
	Password string
	Token    string
}

func Load() DB {
	password := os.Getenv("DB_PASSWORD")
	token := cfg.AccessToken
	return DB{Password: password, Token: token}
}

// badToken fails its checksum, as a typo in a fixture would: gho_HRrQLcdHJ9CUpB9FYS6J6T5Ukk6fTr3YcPHA
const tokenHeader = "X-Session-Token"

var passwordPolicy = "min-length-12"
