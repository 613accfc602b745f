# The centres of the mixtures of Mokrov et al.'s convergence comparison
# (their five experiments per dimension), regenerated from the seeds their
# configurations name: each experiment seeds PyTorch with the CRC-32 of
# "<key>@<D>@<experiment>pytorch" and draws the K x D centres uniform in
# [-5, 5] as its first random numbers. Writes a CSV: D, experiment, centre
# index, then the coordinates x1..x12 (NA past D).
import sys, zlib
import torch

configs = [(2, "venus", 5), (4, "earth", 6), (6, "mars", 7), (8, "saturn", 8),
           (10, "jupiter", 9), (12, "uran", 10)]
out = open(sys.argv[1], "w") if len(sys.argv) > 1 else sys.stdout
out.write("D,experiment,centre," + ",".join("x%d" % (i + 1) for i in range(12)) + "\n")
for D, key, K in configs:
    for e in range(5):
        torch.manual_seed(zlib.crc32(("%s@%d@%dpytorch" % (key, D, e)).encode()))
        c = torch.distributions.Uniform(-5.0, 5.0).sample((K, D))
        for k in range(K):
            vals = ["%.9g" % float(v) for v in c[k]] + ["NA"] * (12 - D)
            out.write("%d,%d,%d,%s\n" % (D, e, k + 1, ",".join(vals)))
