"""Generator settings shared by the synthetic-data tests: one training patient per diagnosis, 256 px."""

ONE_PATIENT_EACH = dict(
    train_gastritis=1,
    train_non_gastritis=1,
    test_gastritis=0,
    test_non_gastritis=0,
    images_per_patient=1,
    image_size=256,
    progress=False,
)
