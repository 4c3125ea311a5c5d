package collector

import "github.com/shoptrail/shoptrail"

// The sites live in the root package, which the processor reads too (one
// sites file for both services); these names keep the collector's API.
type (
	Site  = shoptrail.Site
	Sites = shoptrail.Sites
)

// ParseSites parses the -sites flag (shoptrail.ParseSites).
func ParseSites(s string) (*Sites, error) { return shoptrail.ParseSites(s) }

// LoadSitesFile reads a sites file (shoptrail.LoadSitesFile).
func LoadSitesFile(path string) (*Sites, error) { return shoptrail.LoadSitesFile(path) }

// NewSites checks sites and indexes them by write key (shoptrail.NewSites).
func NewSites(list []Site) (*Sites, error) { return shoptrail.NewSites(list) }
