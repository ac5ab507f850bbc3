package docker

// Metadata is read from a container's env and labels: keys that start with
// Prefix. The rest of the key is lower-cased; SERVICE_<port>_<KEY> applies to
// one exposed port and beats SERVICE_<KEY>; a label beats an env var.
const Prefix = "SERVICE_"

// Keys, lower-cased, as they appear after the prefix (and the port).
const (
	KeyName   = "name"
	KeyID     = "id"
	KeyTags   = "tags"
	KeyIgnore = "ignore"
	// KeyDockerHealth chooses, per container or port, how Docker's
	// HEALTHCHECK status counts: one of the Health* modes.
	KeyDockerHealth = "docker_health"
	// KeyDeregister is the container's deregistration policy: always,
	// on-success or never.
	KeyDeregister = "deregister"
	// KeyDrain is how long a stopped container's services stay draining.
	KeyDrain = "drain"
	// KeyNetwork names the network whose address -internal registers.
	KeyNetwork = "network"
	// KeyIPFamily is 4 or 6: register by IPv4 or IPv6 address.
	KeyIPFamily = "ip_family"
	// KeyTagOverride is Consul's EnableTagOverride.
	KeyTagOverride = "enable_tag_override"
	// KeyWeight, KeyPriority and KeyTTL are the service's weight (Consul,
	// skydns2) and SRV priority and record TTL (skydns2). They stay
	// attributes too, as in registrator.
	KeyWeight   = "weight"
	KeyPriority = "priority"
	KeyTTL      = "ttl"
	// KeyConnectSidecar asks for a Consul Connect sidecar registration:
	// true, or the port the user's proxy listens on.
	KeyConnectSidecar = "connect_sidecar"

	// Every key that starts with KeyCheckPrefix configures checks and is never
	// an attribute.
	KeyCheckPrefix = "check_"

	KeyCheckHTTP          = "check_http"
	KeyCheckHTTPS         = "check_https"
	KeyCheckTCP           = "check_tcp"
	KeyCheckGRPC          = "check_grpc"
	KeyCheckTTL           = "check_ttl"
	KeyCheckScript        = "check_script"
	KeyCheckInterval      = "check_interval"
	KeyCheckTimeout       = "check_timeout"
	KeyCheckHTTPMethod    = "check_http_method"
	KeyCheckInitialStatus = "check_initial_status"
	KeyCheckDeregister    = "check_deregister_after"
	KeyCheckGRPCUseTLS    = "check_grpc_use_tls"
	KeyCheckTLSSkipVerify = "check_tls_skip_verify"
	KeyCheckHeader        = "check_header"
	KeyCheckTLSServerName = "check_tls_server_name"
)

// How a container's Docker health counts (-docker-health, SERVICE_DOCKER_HEALTH).
const (
	HealthMirror  = "mirror"  // Consul shows it as a check; other backends hold the entry while healthy
	HealthOnly    = "healthy" // registered only while healthy, everywhere
	HealthIgnore  = "ignore"  // not looked at
	maxProbeBytes = 4096      // of the last probe's output kept for the check
)

// DefaultCheckInterval is the interval of a check that does not set one.
const DefaultCheckInterval = "10s"

// LabelComposeService names the service of an image referenced by ID.
const LabelComposeService = "com.docker.compose.service"

// Placeholders replaced in SERVICE_CHECK_SCRIPT by the registered address and port.
const (
	ScriptIP   = "$SERVICE_IP"
	ScriptPort = "$SERVICE_PORT"
)
