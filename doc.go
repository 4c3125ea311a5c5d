// Package shoptrail holds the contracts every part of the pipeline shares: the
// normalized Event that the collector produces to Kafka and the processor
// consumes, its type constants, the Kafka topic names, the sites both
// services read (Site, LoadSitesFile), and the ClickHouse schema
// migrations embedded from sql/migrations.
//
// The package depends on the standard library only. The collector and the
// processor never import each other; this package and the sql/ schema are
// their whole contract.
package shoptrail
