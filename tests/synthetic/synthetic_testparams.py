"""Generator settings shared by the synthetic-data tests: one training patient per diagnosis, 256 px; and a
made-up identity written out by hand."""

import datetime as dt

from gastrodistill.data.synthetic.identities import Identity

ONE_PATIENT_EACH = dict(
    train_gastritis=1,
    train_non_gastritis=1,
    test_gastritis=0,
    test_non_gastritis=0,
    images_per_patient=1,
    image_size=256,
    progress=False,
)

IDENTITY = Identity(
    patient_id="P7654321",
    family_name="KITAHARA",
    given_name="NORIKO",
    sex="F",
    birth_date=dt.date(1948, 7, 30),
    study_date=dt.date(2017, 2, 14),
    institution="HOKUYO HEALTH SCREENING CENTER",
    physician="ODAGIRI^MAYUMI",
    accession="A987654321",
)
