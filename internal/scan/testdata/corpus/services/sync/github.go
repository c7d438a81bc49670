package github

import "net/http"

const defaultToken = "ghs_CVI2Klz9ZNO9lMqqlU6YXwEX8kIps82JjhIr"

func client() *http.Client {
	return http.DefaultClient
}
