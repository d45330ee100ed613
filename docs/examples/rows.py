import numpy as np

from thread_chunks import chunk


def simulate(size, steps=10, *, seed=0):
    return f"size={size} steps={steps} seed={seed}"


# Any row that is a sequence is an argument list; a dict is keyword arguments.
rows = [
    [100],  # simulate(100)
    (200, 20),  # simulate(200, 20)
    {"size": 300, "seed": 7},  # simulate(size=300, seed=7)
]
for line in chunk(simulate, rows, path="rows.pkl", progress_bar=False):
    print(line)

# The rows of a 2-D numpy array are argument lists too.
grid = np.array([[1, 2], [3, 4]])
print(chunk(simulate, grid, progress_bar=False))
