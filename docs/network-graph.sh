#!/bin/bash
# How docs/network-graph.svg was made: ten peers in network namespaces on a bridge (as root;
# mDNS never leaves them), a registry on the first; alice chats with bob and carol, six peers
# use --lan, the others join; then alice runs `graph`. Needs a debug build and graphviz:
#   bash docs/network-graph.sh && dot -Tsvg docs/network-graph.dot > docs/network-graph.svg
set -u
P=p2pten; B=$(cd "$(dirname "$0")/.." && pwd)/target/debug
D=/tmp/ten; rm -rf $D; mkdir -p $D
cleanup() { for i in $(seq 1 10) br; do ip netns del $P$i 2>/dev/null; done; }
trap cleanup EXIT
ip netns add ${P}br; ip -n ${P}br link add br0 type bridge; ip -n ${P}br link set br0 up
for i in $(seq 1 10); do
  ip netns add $P$i
  ip -n ${P}br link add v$i type veth peer name eth0 netns $P$i
  ip -n ${P}br link set v$i master br0 up
  ip -n $P$i addr add 10.77.0.$i/24 dev eth0; ip -n $P$i link set eth0 up; ip -n $P$i link set lo up
done
(sleep 40) | ip netns exec ${P}1 $B/p2p-server --port 4000 --bind 10.77.0.1 --data-dir $D/reg > $D/reg.out 2>&1 &
sleep 1
names=(x alice bob carol dave erin frank grace heidi ivan judy)
for i in $(seq 1 10); do
  n=${names[$i]}
  lan=""; [ $i -le 6 ] && lan="--lan"
  reg="register"; [ $i -ge 9 ] && reg="whoami"
  join="whoami"; [ $i -ge 7 ] && join="join 10.77.0.$((i-1)) 4100"
  case $n in
    alice) script="sleep 2; echo register; sleep 4; echo 'chat request bob'; sleep 3; echo 'chat request carol'; sleep 6; echo graph; echo 'graph --json'; sleep 2; echo exit";;
    bob) script="sleep 2; echo register; sleep 6; echo yes; sleep 14; echo exit";;
    carol) script="sleep 2; echo register; sleep 9; echo yes; sleep 11; echo exit";;
    *) script="sleep 2; echo $reg; sleep 1; echo '$join'; sleep 19; echo exit";;
  esac
  (bash -c "$script") | ip netns exec $P$i $B/p2p-peer --name $n --port 4100 --bind 10.77.0.$i $lan --server 10.77.0.1:4000 --data-dir $D/$n --exchange-every 2s > $D/$n.out 2>&1 &
done
wait
sed -n "/^digraph/,/^}/p" $D/alice.out > "$(dirname "$0")/network-graph.dot"
