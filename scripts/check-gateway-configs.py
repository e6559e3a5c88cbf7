#!/usr/bin/env python3
"""Checks the Envoy and Traefik recipes (deploy/envoy/envoy.yaml, deploy/traefik/dynamic.yaml)
and the nginx one's names, without running Envoy or Traefik (neither is in Debian;
scripts/nginx-test.sh runs nginx for real).

Each config must parse, use only the fields its gateway documents where keyledger is
wired in (Envoy's ext_authz HTTP service, Traefik's forwardAuth), ask the path of
authorizeRequest in openapi/openapi.json with only its query parameters, name functions
of keyledger's catalogue (src/domain/catalogue.rs) and event ids keyledger accepts, and
pass on only headers the spec says authorizeRequest answers with. Exits 1 naming every
problem found.

Usage: python3 scripts/check-gateway-configs.py   (from anywhere; needs PyYAML)
"""

import json
import re
import sys
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import yaml

ROOT = Path(__file__).resolve().parent.parent
problems = []


def problem(where, message):
    problems.append(f"{where}: {message}")


# What the spec and the catalogue say.
spec = json.loads((ROOT / "openapi/openapi.json").read_text())
authorize = [
    (path, operation)
    for path, item in spec["paths"].items()
    for method, operation in item.items()
    if isinstance(operation, dict) and operation.get("operationId") == "authorizeRequest" and method == "get"
]
if len(authorize) != 1:
    sys.exit("openapi/openapi.json has no single GET authorizeRequest")
AUTHORIZE_PATH, operation = authorize[0]
QUERY = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
REQUIRED_QUERY = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query" and p.get("required")}
ALLOWED_HEADERS = {name.lower() for name in operation["responses"]["200"].get("headers", {})}
REFUSAL_HEADERS = {
    name.lower()
    for status in ("401", "403", "429")
    for name in operation["responses"].get(status, {}).get("headers", {})
}
SCHEMES = {scheme.get("scheme") for scheme in spec.get("components", {}).get("securitySchemes", {}).values()}
FUNCTIONS = set(re.findall(r'entry\("([^"]+)"', (ROOT / "src/domain/catalogue.rs").read_text()))
EVENT_ID = re.compile(r"^[A-Za-z0-9._~:-]{1,}$")
# What the upstream must learn from keyledger, and what the gateway must send it.
UPSTREAM_MUST_GET = {"keyledger-user-id", "keyledger-key-id"}
if not UPSTREAM_MUST_GET <= ALLOWED_HEADERS:
    sys.exit(f"authorizeRequest's 200 no longer names {sorted(UPSTREAM_MUST_GET - ALLOWED_HEADERS)}")
if not {"bearer", "basic"} <= SCHEMES:
    sys.exit("the spec no longer has both Bearer and Basic security schemes")


def check_query(where, query):
    """A query string sent to authorizeRequest: known parameters, a known function, a valid event."""
    pairs = parse_qsl(query, keep_blank_values=True)
    names = [name for name, _ in pairs]
    for name in names:
        if name not in QUERY:
            problem(where, f"query parameter `{name}` is not one of authorizeRequest's {sorted(QUERY)}")
    for name in REQUIRED_QUERY - set(names):
        problem(where, f"the required query parameter `{name}` is missing")
    for name, value in pairs:
        if name == "function" and value not in FUNCTIONS:
            problem(where, f"function `{value}` is not in the catalogue")
        if name == "event_id" and not EVENT_ID.match(value):
            problem(where, f"event_id `{value}` is not an event id")


def check_fields(where, mapping, documented):
    if not isinstance(mapping, dict):
        problem(where, f"expected a mapping, found {type(mapping).__name__}")
        return {}
    for field in mapping:
        if field not in documented:
            problem(where, f"`{field}` is not a documented field ({', '.join(sorted(documented))})")
    return mapping


def matcher_names(where, matchers):
    """The header names a list of Envoy StringMatchers accepts, exact ones only."""
    names = set()
    for matcher in matchers or []:
        check_fields(where, matcher, {"exact", "prefix", "suffix", "safe_regex", "contains", "ignore_case"})
        if "exact" not in matcher:
            problem(where, f"{matcher}: name keyledger's headers exactly, not by pattern")
            continue
        names.add(matcher["exact"].lower())
    return names


# Envoy: ext_authz, HTTP service (envoy.extensions.filters.http.ext_authz.v3).
EXT_AUTHZ = "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz"
EXT_AUTHZ_FIELDS = {
    "@type", "grpc_service", "http_service", "transport_api_version", "failure_mode_allow",
    "failure_mode_allow_header_add", "with_request_body", "clear_route_cache", "status_on_error",
    "validate_mutations", "metadata_context_namespaces", "typed_metadata_context_namespaces",
    "route_metadata_context_namespaces", "route_typed_metadata_context_namespaces", "filter_enabled",
    "filter_enabled_metadata", "deny_at_disable", "include_peer_certificate", "stat_prefix",
    "bootstrap_metadata_labels_key", "allowed_headers", "disallowed_headers", "include_tls_session",
    "charge_cluster_response_stats", "encode_raw_headers", "decoder_header_mutation_rules",
    "enable_dynamic_metadata_ingestion", "filter_metadata", "emit_filter_state_stats",
}
HTTP_SERVICE_FIELDS = {"server_uri", "path_prefix", "authorization_request", "authorization_response", "retry_policy"}
HTTP_URI_FIELDS = {"uri", "cluster", "timeout"}
AUTHORIZATION_REQUEST_FIELDS = {"allowed_headers", "headers_to_add"}
AUTHORIZATION_RESPONSE_FIELDS = {
    "allowed_upstream_headers", "allowed_upstream_headers_to_append", "allowed_client_headers",
    "allowed_client_headers_on_success", "dynamic_metadata_from_headers",
}
LUA = "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua"


def check_envoy(path):
    where = str(path.relative_to(ROOT))
    config = yaml.safe_load(path.read_text())
    resources = config["static_resources"]
    clusters = {cluster["name"]: cluster for cluster in resources["clusters"]}
    managers = [
        f["typed_config"]
        for listener in resources["listeners"]
        for chain in listener["filter_chains"]
        for f in chain["filters"]
        if f["name"] == "envoy.filters.network.http_connection_manager"
    ]
    if not managers:
        problem(where, "no http_connection_manager")
    for manager in managers:
        filters = manager["http_filters"]
        types = [f["typed_config"]["@type"] for f in filters]
        authz = [f["typed_config"] for f in filters if f["typed_config"]["@type"] == EXT_AUTHZ]
        if len(authz) != 1:
            problem(where, f"expected one ext_authz filter, found {len(authz)}")
            continue
        if types[-1] != "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router":
            problem(where, "the router must be the last HTTP filter")
        position = types.index(EXT_AUTHZ)
        before = [f for f in filters[:position] if f["typed_config"]["@type"] == LUA]
        after = [f for f in filters[position + 1 :] if f["typed_config"]["@type"] == LUA]
        ext = check_fields(f"{where} ext_authz", authz[0], EXT_AUTHZ_FIELDS)
        if ext.get("failure_mode_allow", False):
            problem(where, "failure_mode_allow would let requests through while keyledger is unreachable")
        if "grpc_service" in ext:
            problem(where, "keyledger is an HTTP service, not gRPC")
        service = check_fields(f"{where} http_service", ext.get("http_service"), HTTP_SERVICE_FIELDS)
        uri = check_fields(f"{where} server_uri", service.get("server_uri"), HTTP_URI_FIELDS)
        for field in HTTP_URI_FIELDS:
            if field not in uri:
                problem(where, f"server_uri needs `{field}`")
        if uri.get("cluster") not in clusters:
            problem(where, f"server_uri's cluster `{uri.get('cluster')}` is not defined")
        prefix = service.get("path_prefix")
        if prefix != AUTHORIZE_PATH:
            problem(where, f"path_prefix `{prefix}` is not authorizeRequest's path {AUTHORIZE_PATH}")
        request = check_fields(f"{where} authorization_request", service.get("authorization_request"), AUTHORIZATION_REQUEST_FIELDS)
        sent = matcher_names(f"{where} allowed_headers", request.get("allowed_headers", {}).get("patterns"))
        if "authorization" not in sent:
            problem(where, "allowed_headers must pass Authorization (Bearer or Basic) to keyledger")
        response = check_fields(f"{where} authorization_response", service.get("authorization_response"), AUTHORIZATION_RESPONSE_FIELDS)
        upstream = matcher_names(f"{where} allowed_upstream_headers", response.get("allowed_upstream_headers", {}).get("patterns"))
        if upstream != UPSTREAM_MUST_GET:
            problem(where, f"allowed_upstream_headers must be exactly {sorted(UPSTREAM_MUST_GET)}, found {sorted(upstream)}")
        client = matcher_names(f"{where} allowed_client_headers", response.get("allowed_client_headers", {}).get("patterns"))
        for name in client - REFUSAL_HEADERS - {"content-type"}:
            problem(where, f"allowed_client_headers names `{name}`, which authorizeRequest never answers with")
        for name in {"www-authenticate", "keyledger-reason"} - client:
            problem(where, f"allowed_client_headers should pass `{name}` to the client")
        # The Lua filter before ext_authz writes the query ext_authz appends to path_prefix.
        if len(before) != 1 or len(after) != 1:
            problem(where, "expected a Lua filter before ext_authz (the query) and one after (the path back)")
            continue
        lua = before[0]["typed_config"]["default_source_code"]["inline_string"]
        for name in re.findall(r'[?&]([A-Za-z_]+)=', lua):
            if name not in QUERY:
                problem(where, f"the Lua filter writes query parameter `{name}`, not one of {sorted(QUERY)}")
        for name in REQUIRED_QUERY:
            if f"?{name}=" not in lua:
                problem(where, f"the Lua filter does not write the required `{name}`")
        if before[0]["name"] != "envoy.filters.http.lua":
            problem(where, "the first Lua filter must be named envoy.filters.http.lua to read the routes' metadata")
        for vhost in manager["route_config"]["virtual_hosts"]:
            for route in vhost["routes"]:
                if "direct_response" in route:
                    continue
                metadata = route.get("metadata", {}).get("filter_metadata", {}).get("envoy.filters.http.lua")
                if not metadata or "read" not in metadata:
                    problem(where, f"route {route['match']} reaches an upstream with no function to check")
                    continue
                for key in ("read", "write"):
                    if key in metadata and metadata[key] not in FUNCTIONS:
                        problem(where, f"route {route['match']}: function `{metadata[key]}` is not in the catalogue")
                if route.get("route", {}).get("cluster") not in clusters:
                    problem(where, f"route {route['match']}: its cluster is not defined")


# Traefik: forwardAuth (https://doc.traefik.io/traefik/middlewares/http/forwardauth/).
FORWARD_AUTH_FIELDS = {
    "address", "tls", "trustForwardHeader", "authResponseHeaders", "authResponseHeadersRegex",
    "authRequestHeaders", "addAuthCookiesToResponse", "headerField", "forwardBody", "maxBodySize",
    "preserveLocationHeader", "preserveRequestMethod",
}


def check_traefik(path):
    where = str(path.relative_to(ROOT))
    config = yaml.safe_load(path.read_text())["http"]
    middlewares = config["middlewares"]
    services = config["services"]
    keyledger = set()
    for name, middleware in middlewares.items():
        if "forwardAuth" not in middleware:
            continue
        keyledger.add(name)
        at = f"{where} {name}"
        auth = check_fields(at, middleware["forwardAuth"], FORWARD_AUTH_FIELDS)
        address = urlsplit(auth.get("address", ""))
        if address.path != AUTHORIZE_PATH:
            problem(at, f"address path `{address.path}` is not authorizeRequest's path {AUTHORIZE_PATH}")
        check_query(at, address.query)
        sent = {header.lower() for header in auth.get("authRequestHeaders", [])}
        if "authorization" not in sent:
            problem(at, "authRequestHeaders must pass Authorization (Bearer or Basic) to keyledger")
        copied = {header.lower() for header in auth.get("authResponseHeaders", [])}
        if copied != UPSTREAM_MUST_GET:
            problem(at, f"authResponseHeaders must be exactly {sorted(UPSTREAM_MUST_GET)}, found {sorted(copied)}")
        if auth.get("trustForwardHeader"):
            problem(at, "trustForwardHeader would let a client choose the X-Forwarded-* keyledger sees")
    for name, router in config["routers"].items():
        at = f"{where} router {name}"
        for used in router.get("middlewares", []):
            if used not in middlewares:
                problem(at, f"middleware `{used}` is not defined")
        if router.get("service") not in services:
            problem(at, f"service `{router.get('service')}` is not defined")
        if not keyledger & set(router.get("middlewares", [])):
            problem(at, "reaches the upstream without a keyledger forwardAuth")


# nginx: the names the recipe uses (scripts/nginx-test.sh runs it for real).
def check_nginx(path):
    where = str(path.relative_to(ROOT))
    text = path.read_text()
    for header in re.findall(r"auth_request_set \$\w+ \$upstream_http_(\w+);", text):
        name = header.replace("_", "-")
        if name not in ALLOWED_HEADERS | REFUSAL_HEADERS:
            problem(where, f"auth_request_set reads `{name}`, which authorizeRequest never answers with")
    for target in re.findall(r"proxy_pass http://keyledger(\S+);", text):
        url = urlsplit(target)
        if url.path != AUTHORIZE_PATH:
            problem(where, f"proxy_pass to keyledger path `{url.path}` is not {AUTHORIZE_PATH}")
        check_query(where, re.sub(r"\$\w+", "summit-nyc", url.query).replace("function=summit-nyc", "function=api.people.read"))
    for function in re.findall(r"\b(api\.[a-z]+\.[a-z]+);", text):
        if function not in FUNCTIONS:
            problem(where, f"function `{function}` is not in the catalogue")


check_envoy(ROOT / "deploy/envoy/envoy.yaml")
check_traefik(ROOT / "deploy/traefik/dynamic.yaml")
check_nginx(ROOT / "deploy/nginx/keyledger.conf")
if problems:
    print("\n".join(problems), file=sys.stderr)
    sys.exit(1)
print("deploy/envoy, deploy/traefik and deploy/nginx name only what openapi/openapi.json and the catalogue define")
