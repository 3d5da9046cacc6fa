"""The configs layer: what a job's config may say and what it costs, before anything runs.

Modules: `schema` (the typed schema of every config group, joined from the options the
datasets, models, directions and steps declare, registered with Hydra), `rules` (checking a
plain config dict: the same rules the constructors apply), `build` (the registries of model and
optimizer names; models, update directions and torch optimizers from option dicts),
`resources` (memory and time estimates from the dataset's shape facts), `budget` (a
launcher's time and memory budget) and `paper_settings` (the authors' values and the
generated table docs/paper-settings.md).
"""
