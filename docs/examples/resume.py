import tempfile
from pathlib import Path

from thread_chunks import Checkpoint, chunk

path = Path(tempfile.mkdtemp()) / "checkpoint.pkl"
broken = True


def f(x, y):
    if broken and x == 3:
        raise RuntimeError("the machine went down")
    return x + y


parameters = [[1, 4], [2, 5], [3, 6], [4, 7]]
try:
    chunk(f, parameters, chunk_size=1, progress_bar=False, path=path)
except RuntimeError as exc:
    print("first run:", exc)

checkpoint = Checkpoint.load(path)
print("saved:", checkpoint.output, checkpoint.completed)

broken = False
print("second run:", chunk(f, parameters, chunk_size=1, progress_bar=False, path=path))
