# roofline.gp -- the roofline figure of docs/PERFORMANCE.md.
#
#   gnuplot -e "dir='build/bench'; out='build/bench/roofline.png'; bw=9; sgemm=150; fma=170; dp=88" bench/roofline.gp
#
# Reads roofline.dat (bench/run writes it: shape, tables' precision, FLOPs
# per byte of precomputed rows a request reads, GFLOP/s reached) and draws
# every shape's point for f32 and bf16 tables under the roofs measured in
# the same run: the memory roof (bw GB/s times FLOP/byte: the median rate at
# which the suite's gathers brought a request's rows in), and the compute
# roofs -- AVX-512 sgemm (best OpenBLAS core), the register-only FMA peak,
# and the vdpbf16ps peak.  Log-log: a point's distance below the lower roof
# is the share of its limit it reaches.

if (!exists("dir")) dir = 'build/bench'
if (!exists("out")) out = dir.'/roofline.png'
if (!exists("bw")) bw = 9
if (!exists("sgemm")) sgemm = 150
if (!exists("fma")) fma = 170
if (!exists("dp")) dp = 88
f = dir.'/roofline.dat'

set terminal pngcairo size 1000,700 font ",10"
set output out
set title "attn\\_score roofline, one thread: P1-P4 with f32 and bf16 tables"
set logscale xy
set grid
set xlabel "FLOPs per byte of precomputed rows"
set ylabel "GFLOP/s"
set xrange [0.5:200]
set yrange [5:1.4 * (dp > fma ? dp : fma)]   # every peak drawn, with room for the key
set key bottom right box opaque
roof(x, c) = (bw * x < c ? bw * x : c)
set samples 400
plot roof(x, sgemm) with lines lw 2 lc rgb "black" title sprintf("roof: %.0f GB/s, sgemm %.0f GFLOP/s", bw, sgemm), \
     fma with lines dt 2 lc rgb "gray40" title sprintf("FMA peak %.0f GFLOP/s", fma), \
     (dp > 0 ? dp : 1/0) with lines dt 3 lc rgb "gray40" title sprintf("vdpbf16ps peak %.0f GFLOP/s", dp), \
     f using ($3):(strcol(2) eq "f32" ? $4 : 1/0) with points pt 7 ps 1.5 lc rgb "#1f77b4" title "f32 tables", \
     f using ($3):(strcol(2) eq "bf16" ? $4 : 1/0) with points pt 5 ps 1.5 lc rgb "#d62728" title "bf16 tables", \
     f using ($3):($4):(strcol(1)." ".strcol(2)) with labels offset 0,1 font ",9" notitle
