# Benchmarks/s3-tls.sh: sourced by the benchmark scripts. Starts moto (scripts/moto-server.py,
# signature checking on) and, when nginx is installed, nginx terminating TLS in front of it on
# 127.0.0.1 (pgBackRest speaks only https to S3; walctl can use either, with `s3-ca-file` set to
# the self-signed certificate, whose subjectAltName is IP:127.0.0.1).
#
#   start_moto_tls WORKDIR BUCKET     # sets MOTO_PID, MOTO_PORT, MOTO_ENDPOINT, MOTO_BUCKET,
#                                     # AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY; with nginx also
#                                     # TLS_PORT, TLS_ENDPOINT, TLS_CA, NGINX_CONF (else TLS_PORT="")
#   pgbr_s3_repo N PATH               # pgBackRest config lines for repository N on the TLS endpoint
#   stop_moto_tls                     # stops both (safe to call twice, and from an EXIT trap)

MOTO_PID=""
NGINX_CONF=""
TLS_PORT=""

_s3tls_free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 30000))
        if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then echo "$p"; return; fi
    done
}

start_moto_tls() {
    local work=$1 bucket=$2 root
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    mkdir -p "$work"
    python3 "$root/scripts/moto-server.py" --port 0 --bucket "$bucket" --env-file "$work/moto.env" \
        --no-stdin-watch --max-seconds 14400 > "$work/moto.log" 2>&1 &
    MOTO_PID=$!
    local end=$((SECONDS + 60))
    until grep -q '^READY' "$work/moto.log"; do
        if [ $SECONDS -ge $end ] || ! kill -0 "$MOTO_PID" 2>/dev/null; then cat "$work/moto.log" >&2; return 1; fi
        sleep 0.2
    done
    # shellcheck disable=SC1091
    source "$work/moto.env"
    # The env file also sets WALCTL_REPOSITORY and WALCTL_S3_*, which would override config files.
    unset WALCTL_REPOSITORY WALCTL_S3_ENDPOINT WALCTL_S3_REGION WALCTL_S3_URI_STYLE WALCTL_S3_KEY WALCTL_S3_KEY_SECRET
    command -v nginx >/dev/null || { echo "nginx not found (apt-get install nginx-light): no TLS endpoint" >&2; return 0; }
    TLS_PORT=$(_s3tls_free_port)
    mkdir -p "$work/nginx"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 -addext "subjectAltName=IP:127.0.0.1" \
        -keyout "$work/nginx/key.pem" -out "$work/nginx/cert.pem" >/dev/null 2>&1
    chmod 644 "$work/nginx/cert.pem"
    NGINX_CONF="$work/nginx/nginx.conf"
    cat > "$NGINX_CONF" <<EOF
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path $work/nginx/body;
    proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;
    server {
        listen 127.0.0.1:$TLS_PORT ssl;
        ssl_certificate $work/nginx/cert.pem;
        ssl_certificate_key $work/nginx/key.pem;
        client_max_body_size 0;
        proxy_request_buffering off;
        proxy_buffering off;
        proxy_http_version 1.1;
        location / {
            proxy_pass http://127.0.0.1:$MOTO_PORT;
            proxy_set_header Host \$http_host;
            proxy_read_timeout 600s;
        }
    }
}
EOF
    if nginx -c "$NGINX_CONF"; then
        TLS_ENDPOINT="https://127.0.0.1:$TLS_PORT"
        TLS_CA="$work/nginx/cert.pem"
    else
        NGINX_CONF=""; TLS_PORT=""
    fi
}

# pgbr_s3_repo N PATH: pgBackRest config lines for repository N at PATH on the TLS endpoint
# (secrets included: pgBackRest refuses them on the command line, so they go in a config file).
pgbr_s3_repo() {
    local r="repo$1"
    printf '%s\n' "$r-type=s3" "$r-path=$2" "$r-s3-bucket=$MOTO_BUCKET" "$r-s3-endpoint=127.0.0.1" \
        "$r-storage-port=$TLS_PORT" "$r-storage-verify-tls=n" "$r-s3-region=us-east-1" "$r-s3-uri-style=path" \
        "$r-s3-key=$AWS_ACCESS_KEY_ID" "$r-s3-key-secret=$AWS_SECRET_ACCESS_KEY"
}

stop_moto_tls() {
    [ -n "$NGINX_CONF" ] && nginx -c "$NGINX_CONF" -s quit 2>/dev/null || true
    [ -n "$MOTO_PID" ] && kill "$MOTO_PID" 2>/dev/null || true
    NGINX_CONF=""; MOTO_PID=""
}
