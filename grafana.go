package shoptrail

import "embed"

// GrafanaProvisioning holds Grafana's file provisioning for shoptrail
// (deploy/grafana/provisioning: the ClickHouse and Prometheus data sources
// and the dashboard provider), which the compose stack mounts and
// `shoptrail dev` hands its Grafana.
//
//go:embed deploy/grafana/provisioning
var GrafanaProvisioning embed.FS

// GrafanaProvisioningDir is the directory of GrafanaProvisioning that holds
// the files.
const GrafanaProvisioningDir = "deploy/grafana/provisioning"
