package sdk_test

import "os"

func exampleDir() string {
	d, _ := os.MkdirTemp("", "authphone-example")
	return d
}
