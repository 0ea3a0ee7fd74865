"""Tasks and their data: what a task is (`taskspec`: GLUE, built-in, user), looking one up (`tasks`), user task
files (`taskfile`), reading and subsetting rows (`loading`), the generated tasks (`synthetic`), tokenizing
(`featurize`), metrics (`metrics`, each registered once) and published results to compare with (`references`)."""
