# Written for thread-chunks 1.x, run by 2.x unchanged.
from thread_chunks import Checkpoint, Chunker, LabelledActor, chunk, config


def f(x, y):
    return x + y


parameters = [[1, 4], [2, 5], [3, 6]]
config.progress_bar = False

# chunk(func, parameters, actors, chunk_size, progress_bar, path)
print(chunk(f, parameters, None, 2, False, "checkpoint.pkl"))

# Chunker(func, actors, chunk_size, progress_bar, persistent, path)
chunker = Chunker(f, None, 2, False, False, "chunker.pkl")
print(chunker.chunk_size, len(chunker.actors), chunker.persistent)
# chunker(parameters, func, progress_bar, path)
print(chunker(parameters), chunker([[1, 2]], max, False, "max.pkl"))

# LabelledActor(func): run, set_func, get_func
actor = LabelledActor(f)
print(actor.run("label", 1, 2))
actor.set_func(max)
print(actor.get_func() is max)

# Checkpoint(func_name, parameters, output, completed, index, done, path)
Checkpoint("f", parameters, [5, None, None], [True, False, False], 1, 1, "made.pkl")
checkpoint = Checkpoint.load("made.pkl")
print(checkpoint.output, checkpoint.completed, checkpoint.index, checkpoint.done)
print(chunk(f, parameters, None, 2, False, "made.pkl"))  # resumes from it
print(Checkpoint.load("made.pkl").index)  # len(parameters) once complete

print(config.ray_config == {"num_cpus": config.default_chunk_size})
