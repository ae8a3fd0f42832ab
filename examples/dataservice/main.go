// Command dataservice is the README's data service: it answers the
// cloud's getData calls and checks the cloud's token (ES256 JWT, iss = the
// cloud, aud = its own URL) with the cloud's JWKS. The code below the
// imports is the README's snippet, as pasted (examples/readme_test.go keeps
// the two identical). Run an emulator with
// --data-service http://127.0.0.1:9000/data, then this.
package main

import (
	"context"
	"fmt"
	"log"
	"net/http"

	"github.com/lestrrat-go/httprc/v3"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

func main() {
	cloud, self := "http://127.0.0.1:8722", "http://127.0.0.1:9000/data"
	cache, _ := jwk.NewCache(context.Background(), httprc.NewClient())
	_ = cache.Register(context.Background(), cloud+"/.well-known/jwks.json")
	http.HandleFunc("POST /data", func(w http.ResponseWriter, r *http.Request) {
		keys, err := cache.Lookup(r.Context(), cloud+"/.well-known/jwks.json")
		if err != nil {
			http.Error(w, "no JWKS", http.StatusBadGateway)
			return
		}
		tok, err := jwt.ParseRequest(r, jwt.WithKeySet(keys), jwt.WithIssuer(cloud), jwt.WithAudience(self))
		if err != nil {
			http.Error(w, "bad token: "+err.Error(), http.StatusUnauthorized)
			return
		}
		user, _ := tok.Subject()
		fmt.Fprintf(w, `{"user":%q,"balance":"100.00 EUR"}`, user)
	})
	log.Fatal(http.ListenAndServe("127.0.0.1:9000", nil))
}
