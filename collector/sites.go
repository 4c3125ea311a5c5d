package collector

import (
	"fmt"
	"regexp"
	"strings"
)

// Sites maps a write key to the id of its site. A site may have several
// write keys (for rotation).
type Sites map[string]string

var siteID = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// ParseSites parses "site=key1|key2,site2=key3".
func ParseSites(s string) (Sites, error) {
	sites := Sites{}
	for _, part := range splitList(s) {
		id, keys, ok := strings.Cut(part, "=")
		if !ok || !siteID.MatchString(id) {
			return nil, fmt.Errorf("site %q: want site=key1|key2 with a site id of letters, digits, _ . -", part)
		}
		for _, k := range strings.Split(keys, "|") {
			if k == "" {
				return nil, fmt.Errorf("site %q has an empty write key", id)
			}
			if other, dup := sites[k]; dup {
				return nil, fmt.Errorf("write key of site %q is also the key of site %q", id, other)
			}
			sites[k] = id
		}
	}
	if len(sites) == 0 {
		return nil, fmt.Errorf("no sites in %q", s)
	}
	return sites, nil
}
