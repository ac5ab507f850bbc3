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
