# 1.x's Ray actors, unchanged: each call runs on the Ray actor it borrows.
import ray

from thread_chunks import Chunker, RemoteLabelledActor, chunk


def f(x, y):
    return x + y


parameters = [[1, 4], [2, 5], [3, 6]]
# Ray is not running yet: thread-chunks starts it with config.ray_config.
actors = [RemoteLabelledActor.remote(f) for _ in range(2)]
print(chunk(None, parameters, actors, 2, False, "ray.pkl"))
print(ray.get(actors[0].run.remote("label", 10, 20)))

chunker = Chunker(actors=actors, progress_bar=False)
print(chunker(parameters, max))
ray.shutdown()
