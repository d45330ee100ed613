from thread_chunks import Checkpoint, chunk


def inverse(x):
    return 1 / x


parameters = [[x] for x in (4, 2, 0, 1)]

# errors="return": every call runs; a failure takes its place in the results.
print(chunk(inverse, parameters, errors="return", progress_bar=False))

# errors="defer": every call runs and is saved, then the failures are raised.
try:
    chunk(inverse, parameters, errors="defer", path="inverse.pkl", progress_bar=False)
except* ZeroDivisionError as group:
    print(group.message)
    print(group.exceptions[0].__notes__[0])

checkpoint = Checkpoint.load("inverse.pkl")
print(checkpoint.completed, checkpoint.failures[2].exception_type)
