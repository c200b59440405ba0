#!/usr/bin/env bash
# Runs one fuzz target for a while, with the flags it needs: ./run.sh TARGET [SECONDS]
# (or ./run.sh all [SECONDS] for every target, one after the other). Needs cargo-fuzz
# (`cargo install cargo-fuzz`); RUSTC_BOOTSTRAP=1 lets the stable toolchain take the nightly
# flags cargo-fuzz passes. New inputs go to corpus/TARGET, crashes to artifacts/TARGET.
set -euo pipefail
cd "$(dirname "$0")"
targets=(frame envelope signed seal registry_session replay names command json_command handshake network)
target=${1:?usage: ./run.sh TARGET|all [SECONDS]  (targets: ${targets[*]})}
seconds=${2:-300}
if [[ $target == all ]]; then
    for t in "${targets[@]}"; do "$0" "$t" "$seconds"; done
    exit
fi
flags=(-max_total_time="$seconds" -print_final_stats=1)
case $target in
    frame) flags+=(-max_len=70000) ;; # room for a whole 64 KiB frame
    envelope | signed) flags+=(-dict=seeds/envelope.dict) ;;
    command) flags+=(-max_len=20000 -dict=seeds/command.dict) ;; # past the 8 KiB text limit
    json_command) flags+=(-max_len=20000 -dict=seeds/json_command.dict) ;; # a line's 16 KiB
    handshake) flags+=(-max_len=2048) ;; # past the 1,368-character base64 limit
    network) flags+=(-max_len=20000 -dict=seeds/envelope.dict) ;; # a page of 65 records, 8 KB of text
esac
mkdir -p "corpus/$target" "seeds/$target"
RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "corpus/$target" "seeds/$target" -- "${flags[@]}"
