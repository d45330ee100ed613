import tempfile
from pathlib import Path

from thread_chunks import chunk

path = Path(tempfile.mkdtemp()) / "sweep.pkl"
computed = []


def energy(x, y):
    computed.append((x, y))
    return x * x + y


grid = [[x, y] for x in range(3) for y in range(2)]
chunk(energy, grid, progress_bar=False, path=path)
print("first run computed", len(computed), "calls")

computed.clear()
finer = [[x, y] for x in range(4) for y in range(2)]  # two more rows
print(chunk(energy, finer, progress_bar=False, path=path, reuse="calls"))
print("the refined run computed", computed)
