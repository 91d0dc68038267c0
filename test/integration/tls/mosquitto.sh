# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# tls_client (client key in the p11tls token) against mosquitto with require_certificate: an
# MQTT 3.1.1 CONNECT written with printf goes in, the CONNACK bytes 20 02 00 00 must come out,
# and mosquitto must name the client by its certificate (use_identity_as_username). EC P-256
# and RSA-2048 keys; a listener trusting another CA must refuse the client.
source "$(dirname "${BASH_SOURCE[0]}")/tls_lib.sh"
require pkcs11-tool opensc
require mosquitto mosquitto
require od coreutils

step "PKI and token: EC P-256 and RSA-2048 client keys imported with pkcs11-tool"
make_ca ca "p11tls test root"
make_ca other "p11tls other root"
make_server ec ca
make_client ec ca
make_client rsa ca
init_token
id=1
for kind in ec rsa; do
    ok "${P11_USER[@]}" --write-object "client-$kind.key.der" --type privkey --label "$kind key" --id "0$id"
    ok "${P11_USER[@]}" --write-object "client-$kind.der" --type cert --label "$kind cert" --id "0$id"
    id=$((id + 1))
done

step "mosquitto on 127.0.0.1: one listener trusting our CA, one trusting another CA"
PORT=$(free_port)
OTHER_PORT=$(free_port)
[[ $PORT != "$OTHER_PORT" ]] || OTHER_PORT=$(free_port)
cat >mosquitto.conf <<EOF
# When started as root mosquitto would switch to the 'mosquitto' user, who cannot read \$WORK.
user root
persistence false
log_dest stderr
log_type all
per_listener_settings false
allow_anonymous false

listener $PORT 127.0.0.1
cafile $WORK/ca.pem
certfile $WORK/server-ec.pem
keyfile $WORK/server-ec.key
require_certificate true
use_identity_as_username true
tls_version tlsv1.2

listener $OTHER_PORT 127.0.0.1
cafile $WORK/other.pem
certfile $WORK/server-ec.pem
keyfile $WORK/server-ec.key
require_certificate true
use_identity_as_username true
tls_version tlsv1.2
EOF
start_server mosquitto mosquitto.log mosquitto -c "$WORK/mosquitto.conf"
MOSQUITTO_PID=$SERVER_PID
wait_for_log mosquitto.log "listen socket on port $OTHER_PORT" 15 "$MOSQUITTO_PID" ||
    die "mosquitto did not start; its log:
$(cat mosquitto.log)"
wait_for_log mosquitto.log "mosquitto version .* running" 15 "$MOSQUITTO_PID" || die "mosquitto is not running"

# connect_packet CLIENT_ID: MQTT 3.1.1 CONNECT (clean session, keep-alive 60 s, no username:
# the certificate names the client), then DISCONNECT so the broker closes the connection.
connect_packet() {
    local id=$1 n=${#1}
    # shellcheck disable=SC2059  # the format is built on purpose: it carries the lengths
    printf "\\x10\\x$(printf %02x $((12 + n)))\\x00\\x04MQTT\\x04\\x02\\x00\\x3c\\x00\\x$(printf %02x "$n")%s\\xe0\\x00" "$id"
}

for kind in ec rsa; do
    step "MQTT CONNECT over mutual TLS, $kind key in the token"
    connect_packet "p11tls-$kind" >"connect-$kind.bin"
    client_ok "connect-$kind.bin" --host 127.0.0.1 --port "$PORT" --sni localhost --ca ca.pem \
        --key-label "$kind key" --cert-label "$kind cert" --store "$P11TLS_STORE" --pin "$USER_PIN"
    connack=$(od -An -tx1 -v "$CLIENT_OUT" | tr -d ' \n')
    say "broker sent: $connack"
    [[ $connack == 20020000 ]] || die "expected exactly CONNACK 20 02 00 00 (session present 0, accepted), got '$connack'"
    wait_for_log mosquitto.log "Client p11tls-$kind disconnected" 10 "$MOSQUITTO_PID" ||
        die "mosquitto did not log the DISCONNECT of p11tls-$kind"
    log=$(cat mosquitto.log)
    assert_contains "$log" "New client connected from 127.0.0.1" "mosquitto's log"
    assert_matches "$log" "as p11tls-$kind .*u'device-$kind'" "mosquitto's log (the certificate names the client)"
    assert_contains "$log" "Sending CONNACK to p11tls-$kind (0, 0)" "mosquitto's log"
done

step "negative: a listener that trusts another CA refuses our certificate"
connect_packet "p11tls-refused" >connect-refused.bin
client_fails connect-refused.bin --host 127.0.0.1 --port "$OTHER_PORT" --sni localhost --ca ca.pem \
    --key-label "ec key" --cert-label "ec cert" --store "$P11TLS_STORE" --pin "$USER_PIN"
assert_contains "$ERR" "unknown_ca"
[[ ! -s $CLIENT_OUT ]] || die "no MQTT bytes may come back from a refused connection"
assert_not_contains "$(cat mosquitto.log)" "as p11tls-refused" "mosquitto's log"

kill "$MOSQUITTO_PID"
stop_server
