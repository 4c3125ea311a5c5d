// Package envflag lets every flag be set from the environment: flag
// "kafka.brokers" is read from SHOPTRAIL_KAFKA_BROKERS. Command-line flags
// win over the environment.
package envflag

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

// Prefix is put before every environment variable name.
const Prefix = "SHOPTRAIL_"

// Name returns the environment variable for a flag name.
func Name(flagName string) string {
	r := strings.NewReplacer(".", "_", "-", "_")
	return Prefix + strings.ToUpper(r.Replace(flagName))
}

// Parse sets the flags of fs from the environment, then parses args.
func Parse(fs *flag.FlagSet, args []string) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil {
			return
		}
		if v, ok := os.LookupEnv(Name(f.Name)); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("invalid value %q for %s: %w", v, Name(f.Name), e)
			}
		}
	})
	if err != nil {
		return err
	}
	return fs.Parse(args)
}
