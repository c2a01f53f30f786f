"""Unix process plumbing shared by the worker and the pool manager: the self-pipe that lets a
signal wake a sleeping loop (``wakeup``) and facts about other processes (``process``)."""
