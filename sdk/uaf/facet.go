package uaf

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// ErrFacetID is wrapped by CheckFacetID's errors.
var ErrFacetID = errors.New("bad facet ID")

// Facet ID prefixes of the UAF AppID and Facet specification for apps.
const (
	FacetAndroidPrefix = "android:apk-key-hash:"
	FacetIOSPrefix     = "ios:bundle-id:"
)

// CheckFacetID reports whether id has one of the forms the UAF AppID and
// Facet specification gives a facet ID: a web origin (http or https, a
// host, optional port, no path, query or fragment), an Android app
// (android:apk-key-hash: then the base64 of its signing certificate's
// hash), or an iOS app (ios:bundle-id: then its bundle ID).
func CheckFacetID(id string) error {
	const want = "want https://host[:port], " + FacetAndroidPrefix + "<base64 hash> or " + FacetIOSPrefix + "<bundle id>"
	switch {
	case strings.HasPrefix(id, FacetAndroidPrefix):
		h := strings.TrimPrefix(id, FacetAndroidPrefix)
		if h == "" || strings.Trim(h, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_") != "" {
			return fmt.Errorf("%w %q: the key hash must be base64; %s", ErrFacetID, id, want)
		}
		return nil
	case strings.HasPrefix(id, FacetIOSPrefix):
		b := strings.TrimPrefix(id, FacetIOSPrefix)
		if b == "" || strings.Trim(b, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-") != "" {
			return fmt.Errorf("%w %q: the bundle ID must be letters, digits, '.' and '-'; %s", ErrFacetID, id, want)
		}
		return nil
	}
	u, err := url.Parse(id)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
		u.Opaque != "" || u.RawQuery != "" || u.Fragment != "" || strings.Contains(id, "#") || (u.Path != "" && u.Path != "/") {
		return fmt.Errorf("%w %q: %s", ErrFacetID, id, want)
	}
	return nil
}
