# A tiny regression run for the tools/ tests (see tests/mmengine_toys.py).
# Default scope is mmengine's; nothing here needs data on disk.
custom_imports = dict(imports=['mmengine_toys'], allow_failed_imports=False)

model = dict(type='ToyRegressor', in_dim=4)

train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    dataset=dict(type='ToyRegressionDataset', length=32),
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'))
test_dataloader = dict(
    batch_size=8,
    num_workers=0,
    dataset=dict(type='ToyRegressionDataset', length=16, seed=1),
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'))
test_evaluator = dict(type='ToyMSEMetric')
test_cfg = dict(type='TestLoop')

train_cfg = dict(type='IterBasedTrainLoop', max_iters=3)
optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='SGD', lr=0.05))
auto_scale_lr = dict(base_batch_size=8)

default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=3, by_epoch=False),
    logger=dict(type='LoggerHook', interval=1))
custom_hooks = [dict(type='ParamDumpHook')]

randomness = dict(seed=0)
log_processor = dict(by_epoch=False)
log_level = 'INFO'
