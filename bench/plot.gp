# plot.gp -- the scaling figure of docs/PERFORMANCE.md.
#
#   gnuplot -e "dir='build/bench'; out='build/bench/scaling.png'" bench/plot.gp
#
# Reads the scale-<sweep>-<mode>.dat files bench/run writes (columns: the
# swept value, req/s, p50 µs, p99 µs, tables MiB, scratch KiB, embeddings MiB)
# and draws four panels: single-thread requests/s against N, L, d and the
# catalog size; the catalog panel also shows memory (right axis), since that
# is what the catalog size really costs.  Log scales: each sweep spans one to
# two decades and the interesting question is the slope.  The dashed lines
# are "time proportional to FLOPs" through the base point (aN, aL, ad: req/s
# times the swept value at the base, passed by bench/run).

if (!exists("dir")) dir = 'build/bench'
if (!exists("out")) out = dir.'/scaling.png'
if (!exists("aN")) aN = 1e6
if (!exists("aL")) aL = 5e5
if (!exists("ad")) ad = 6e5
f(s) = dir.'/scale-'.s.'.dat'

set terminal pngcairo size 1200,900 font ",10"
set output out
set multiplot layout 2,2 title "attn\\_score, one thread, around P2 (d=128, H=4, L=100, N=200, 100k items)"
set grid
set logscale xy
set key top right
set ylabel "requests/s"

set title "candidates N"
set xlabel "N"
plot f('N-all') using 1:2 with linespoints pt 7 title "req/s", \
     f('N-all') using 1:(aN/$1) with lines dt 2 lc rgb "gray" title "∝ 1/FLOPs"

set title "history L"
set xlabel "L"
plot f('L-all') using 1:2 with linespoints pt 7 title "req/s", \
     f('L-all') using 1:(aL/$1) with lines dt 2 lc rgb "gray" title "∝ 1/FLOPs"

set title "dimension d = m (H = 4)"
set xlabel "d"
plot f('d-all') using 1:2 with linespoints pt 7 title "req/s", \
     f('d-all') using 1:(ad/$1) with lines dt 2 lc rgb "gray" title "∝ 1/FLOPs"

set title "catalog size (memory on the right)"
set xlabel "items"
set y2label "MiB"
set logscale y2
set y2tics
set ytics nomirror
set key bottom right box opaque
plot f('items-all') using 1:2 with linespoints pt 7 title "req/s, precompute all", \
     f('items-bf16') using 1:2 with linespoints pt 9 title "req/s, all, bf16 tables", \
     f('items-none') using 1:2 with linespoints pt 5 title "req/s, precompute none", \
     f('items-all') using 1:($5+$7) axes x1y2 with linespoints pt 7 dt 3 title "MiB: embeddings + tables (all)", \
     f('items-bf16') using 1:5 axes x1y2 with linespoints pt 9 dt 3 title "MiB: bf16 tables (embeddings can go)", \
     f('items-none') using 1:($5+$7) axes x1y2 with linespoints pt 5 dt 3 title "MiB: embeddings + tables (none)"
unset multiplot
